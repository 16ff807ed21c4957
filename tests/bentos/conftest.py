"""A real inference service for HTTP tests: EURUSD candles, materialized features, two registered LSTM versions
(production and a 30 % canary, both forced past a gate that rejected them), API keys, and `aicash serve` running
as a subprocess on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
TINY = {"max_epochs": 2, "n_folds": 2, "hidden_size": 8, "patience": 1}


@dataclass
class Service:
    url: str
    env: dict[str, str]
    key: str
    admin_key: str
    revoked_key: str
    limited_key: str
    production: str
    canary: str
    database_url: str

    def post(self, path: str, json: object = None, key: str | None = None, **kw):  # type: ignore[no-untyped-def]
        headers = {"X-API-Key": key or self.key} | kw.pop("headers", {})
        return httpx.post(self.url + path, json=json, headers=headers, timeout=30, **kw)

    def get(self, path: str, key: str | None = None):  # type: ignore[no-untyped-def]
        return httpx.get(self.url + path, headers={"X-API-Key": key or self.key}, timeout=30)


@contextmanager
def environment(env: Mapping[str, str]) -> Iterator[None]:
    """Run the block with exactly `env` as the process environment (settings are read from it)."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare(home: Path) -> tuple[str, str]:
    """Candles, features, two trained versions in the registry; returns (production, canary)."""
    from aicash.db import migrate
    from aicash.db.engine import engine_for
    from aicash.indicators import with_indicators
    from aicash.market.ingest import ingest_frame
    from aicash.market.samples import load_sample
    from aicash.model_input import MODEL_NAME
    from aicash.registry import new_version, promote, register_model, store_for
    from aicash.settings import load_settings
    from aicash.training.config import TrainingConfig
    from aicash.training.experiment import train_and_evaluate
    from features.store import apply, materialize

    settings = load_settings()
    engine = engine_for(settings)
    migrate.upgrade(engine)
    candles = load_sample("eurusd-1h")
    ingest_frame(engine, candles, "EURUSD", "1h")
    apply(settings)
    materialize(settings)
    frame = with_indicators(candles.assign(symbol="EURUSD", timeframe="1h"))
    versions = []
    for seed in (1, 2):
        result = train_and_evaluate(frame, TrainingConfig(**TINY, seed=seed))
        folder = home / f"artifacts-{seed}"
        result.save(folder)
        record = register_model(engine, store_for(settings), name=MODEL_NAME, version=new_version(folder),
                                artifacts_dir=folder, metrics={"aggregate": {}}, approved=False,
                                reasons=["failed: test model"], actor="test")
        versions.append(record.version)
    promote(engine, versions[0], 100, force=True, reason="test: serve a rejected model", actor="test")
    promote(engine, versions[1], 30, force=True, reason="test: canary", actor="test")
    engine.dispose()
    return versions[0], versions[1]


@pytest.fixture(scope="package")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    from aicash.db.engine import make_engine
    from aicash.serving.keys import create_key, revoke_key

    home = tmp_path_factory.mktemp("serving-home")
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {
        "AICASH_HOME": str(home), "BENTOML_HOME": str(home / "bentoml"), "FEAST_USAGE": "False",
        "RATE_LIMIT_PER_MINUTE": "300", "CORS_ALLOW_ORIGINS": "https://app.aicash.example",
        "REGISTRY_RELOAD_SECONDS": "1", "PREDICTION_CACHE_TTL_SECONDS": "30",
    }
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        production, canary = _prepare(home)
        database_url = f"sqlite:///{home / 'aicash.db'}"
        engine = make_engine(database_url)
        keys = [create_key(engine, name, admin=name == "ops") for name in ("frontend", "ops", "gone", "busy")]
        revoke_key(engine, "gone")
        engine.dispose()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    port = free_port()
    log = (home / "serve.log").open("w")
    proc = subprocess.Popen(  # noqa: S603
        [str(Path(sys.executable).parent / "aicash"), "serve", "--port", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, (home / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        else:
            raise AssertionError("service not ready:\n" + (home / "serve.log").read_text()[-3000:])
        yield Service(url, env, keys[0], keys[1], keys[2], keys[3], production, canary, database_url)
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()
