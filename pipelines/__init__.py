"""Kubeflow Pipelines (KFP v2) of the platform; components are thin wrappers over `pipelines.steps`."""
