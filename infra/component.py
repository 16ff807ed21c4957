"""The base of every aicash component: children inherit the component's `depends_on`.

Pulumi orders a component after its dependencies but not the component's children, so without this a
Deployment could start before the migrations Job its component depends on has finished.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi


class Component(pulumi.ComponentResource):
    """A ComponentResource with `child_opts()` for its children."""

    def __init__(self, type_token: str, name: str, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(type_token, name, None, opts)
        depends = opts.depends_on if opts is not None else None
        if depends is None:
            self._depends_on: list[pulumi.Resource] = []
        elif isinstance(depends, pulumi.Resource):
            self._depends_on = [depends]
        else:
            self._depends_on = list(depends)  # type: ignore[arg-type]

    def child_opts(self, depends_on: Sequence[pulumi.Resource] = ()) -> pulumi.ResourceOptions:
        """Options for a child: parented here, after this component's dependencies and `depends_on`."""
        return pulumi.ResourceOptions(parent=self, depends_on=[*self._depends_on, *depends_on])
