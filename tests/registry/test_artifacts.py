"""The artifact store on local files and on S3 (moto server): round trip, immutability, SHA-256 refusals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from aicash.registry import (
    ArtifactError,
    ArtifactExistsError,
    ArtifactIntegrityError,
    ArtifactNotFoundError,
    LocalArtifactStore,
    S3ArtifactStore,
    store_for,
)
from aicash.registry.artifacts import build_manifest
from aicash.settings import load_settings
from tests.support.registry import corrupt

NAME, VERSION = "signal-lstm", "v20250101-000000-abcdef0"


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_round_trip_keeps_every_byte_and_the_digest(store, artifacts_dir: Path, tmp_path: Path) -> None:
    stored = store.upload(NAME, VERSION, artifacts_dir)
    assert set(stored.files) == {"model.pt", "scaler.json", "features.json", "metrics.json", "reports/report.html"}
    assert stored.uri.endswith(f"{NAME}/{VERSION}/")
    assert stored.uri.startswith("s3://" if isinstance(store, S3ArtifactStore) else "file://")
    assert store.list_versions() == [(NAME, VERSION)] and store.list_versions("other") == []

    dest = store.download(NAME, VERSION, tmp_path / "out", expected_sha256=stored.sha256)
    got = tree(dest)
    manifest = got.pop("manifest.json")
    assert got == tree(artifacts_dir)
    assert hashlib.sha256(manifest).hexdigest() == stored.sha256
    assert json.loads(manifest)["files"]["model.pt"]["sha256"] == hashlib.sha256(got["model.pt"]).hexdigest()


def test_a_version_is_immutable(store, artifacts_dir: Path) -> None:
    store.upload(NAME, VERSION, artifacts_dir)
    with pytest.raises(ArtifactExistsError, match="immutable"):
        store.upload(NAME, VERSION, artifacts_dir)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: bytes([b[0] ^ 0xFF]) + b[1:], "model.pt is corrupted"),
        (lambda b: b[: len(b) // 2], "model.pt truncated"),
        (lambda b: b"", "model.pt truncated"),
    ],
    ids=["flipped-byte", "truncated", "emptied"],
)
def test_a_damaged_file_is_refused_and_nothing_lands(store, artifacts_dir, tmp_path, mutate, message) -> None:
    stored = store.upload(NAME, VERSION, artifacts_dir)
    corrupt(store, NAME, VERSION, "model.pt", mutate)
    dest = tmp_path / "out"
    with pytest.raises(ArtifactIntegrityError, match=message):
        store.download(NAME, VERSION, dest, expected_sha256=stored.sha256)
    assert not dest.exists()
    assert not list(tmp_path.glob(".aicash-download-*"))  # staging cleaned up


def test_a_replaced_manifest_fails_the_registered_digest(store, artifacts_dir, tmp_path) -> None:
    stored = store.upload(NAME, VERSION, artifacts_dir)
    # swap the model and rewrite the manifest to match it: only the registered digest can catch that
    (artifacts_dir / "model.pt").write_bytes(b"another model")
    corrupt(store, NAME, VERSION, "model.pt", lambda _: b"another model")
    corrupt(store, NAME, VERSION, "manifest.json", lambda _: build_manifest(NAME, VERSION, artifacts_dir))
    assert store.download(NAME, VERSION, tmp_path / "unchecked").joinpath("model.pt").read_bytes() == b"another model"
    with pytest.raises(ArtifactIntegrityError, match="does not match the registered SHA-256"):
        store.download(NAME, VERSION, tmp_path / "out", expected_sha256=stored.sha256)


def test_a_missing_file_or_version_is_named(store, artifacts_dir, tmp_path) -> None:
    with pytest.raises(ArtifactNotFoundError, match=f"no artifacts for {NAME} {VERSION}"):
        store.download(NAME, VERSION, tmp_path / "out")
    store.upload(NAME, VERSION, artifacts_dir)
    store._delete([store._key(NAME, VERSION, "scaler.json")])
    with pytest.raises(ArtifactIntegrityError, match="scaler.json is missing"):
        store.download(NAME, VERSION, tmp_path / "out")


def test_bad_names_and_empty_folders_are_refused(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "store")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="holds no files"):
        store.upload(NAME, VERSION, tmp_path / "empty")
    with pytest.raises(ArtifactError, match="version '../x' is invalid"):
        store.upload(NAME, "../x", tmp_path / "empty")


def test_settings_choose_the_store(monkeypatch, tmp_path, moto_endpoint, s3_bucket) -> None:
    monkeypatch.setenv("AICASH_HOME", str(tmp_path / "home"))
    local = store_for(load_settings())
    assert isinstance(local, LocalArtifactStore) and local.root == (tmp_path / "home" / "models").resolve()
    monkeypatch.setenv("USE_S3_STORAGE", "true")
    monkeypatch.setenv("S3_BUCKET", s3_bucket)
    monkeypatch.setenv("S3_ENDPOINT_URL", moto_endpoint)
    s3 = store_for(load_settings())
    assert isinstance(s3, S3ArtifactStore) and s3.bucket == s3_bucket and s3.list_versions() == []


def test_a_missing_bucket_is_a_clear_error(moto_endpoint, aws_env) -> None:
    store = S3ArtifactStore("no-such-bucket-aicash", moto_endpoint)
    with pytest.raises(ArtifactError, match="bucket 'no-such-bucket-aicash' does not exist"):
        store.list_versions()
