"""Feast's S3 registry store, with its S3 endpoint taken from the registry's configuration.

Feast 0.67's `S3RegistryStore` reads the endpoint (MinIO, ...) only from the FEAST_S3_ENDPOINT_URL environment
variable. `feature_store.cluster-redis.yaml` names this store instead (`registry_store_type`) and gives the endpoint
as `s3_endpoint_url` in its `registry` block (S3_ENDPOINT_URL, filled like every other variable), so that no
process has to change its environment before it opens the store, and Feast's own CLI reads the same file.
"""

from __future__ import annotations

from pathlib import Path

import boto3
from feast.infra.registry.s3 import S3RegistryStore
from feast.repo_config import RegistryConfig


class S3EndpointRegistryStore(S3RegistryStore):
    """`S3RegistryStore` talking to `registry_config.s3_endpoint_url` (empty or absent: AWS)."""

    def __init__(self, registry_config: RegistryConfig, repo_path: Path) -> None:
        super().__init__(registry_config, repo_path)
        endpoint = getattr(registry_config, "s3_endpoint_url", None) or None  # an extra field of Feast's config
        self.s3_client = boto3.resource("s3", endpoint_url=endpoint)
