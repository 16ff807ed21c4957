"""The aicash Pulumi program: one ComponentResource per concern, composed by `__main__.py`.

`pulumi up` runs this package as a module (see Pulumi.yaml); `aicash infra render` runs the same program
under Pulumi's mocks (`infra.render`) to write the Kubernetes objects it would create.
"""
