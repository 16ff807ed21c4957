"""Artifacts to register and the two stores: local files and S3 served by moto over real HTTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from aicash.registry import ArtifactStore, LocalArtifactStore, S3ArtifactStore


def make_artifacts(folder: Path, seed: int = 0) -> Path:
    """A small artifacts directory shaped like the trainer's output."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pt").write_bytes(bytes((i * 7 + seed) % 256 for i in range(4096)))
    (folder / "scaler.json").write_text(json.dumps({"mean": [0.1 * seed, 0.2], "scale": [1.0, 2.0]}))
    (folder / "features.json").write_text(json.dumps(["rsi_value", "adx_value"]))
    (folder / "metrics.json").write_text(json.dumps({"accuracy": 0.6 + seed / 100}))
    (folder / "reports").mkdir(exist_ok=True)
    (folder / "reports" / "report.html").write_text(f"<html>run {seed}</html>")
    return folder


@pytest.fixture
def artifacts_dir(tmp_path: Path) -> Path:
    return make_artifacts(tmp_path / "artifacts")


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """An S3 API served by moto on 127.0.0.1 (free port) for the session, stopped at the end."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials for boto3's standard chain; no profile or metadata lookups."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


@pytest.fixture
def s3_bucket(moto_endpoint: str, aws_env: None) -> str:
    """A fresh bucket on the moto server."""
    import boto3

    name = f"aicash-test-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """Each store test runs on local files and on S3 (moto server)."""
    if request.param == "local":
        return LocalArtifactStore(tmp_path / "store")
    bucket = request.getfixturevalue("s3_bucket")
    return S3ArtifactStore(bucket, request.getfixturevalue("moto_endpoint"))


def corrupt(store: ArtifactStore, name: str, version: str, rel: str, mutate) -> None:  # type: ignore[no-untyped-def]
    """Replace one stored file's bytes with `mutate(bytes)`, behind the store's back."""
    key = store._key(name, version, rel)
    if isinstance(store, LocalArtifactStore):
        path = store._path(key)
        path.write_bytes(mutate(path.read_bytes()))
    else:
        assert isinstance(store, S3ArtifactStore)
        body = store.client.get_object(Bucket=store.bucket, Key=key)["Body"].read()
        store.client.put_object(Bucket=store.bucket, Key=key, Body=mutate(body))
