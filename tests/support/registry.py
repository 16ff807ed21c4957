"""Artifacts shaped like the trainer's output, and stored files changed behind a store's back."""

from __future__ import annotations

import json
from pathlib import Path

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
