"""Artifacts to register and the two stores: local files and S3 served by moto over real HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from aicash.registry import ArtifactStore, LocalArtifactStore, S3ArtifactStore
from tests.support.registry import make_artifacts


@pytest.fixture
def artifacts_dir(tmp_path: Path) -> Path:
    return make_artifacts(tmp_path / "artifacts")


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """Each store test runs on local files and on S3 (moto server)."""
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "store")
    bucket = request.getfixturevalue("s3_bucket")
    return S3ArtifactStore(bucket, request.getfixturevalue("moto_endpoint"))
