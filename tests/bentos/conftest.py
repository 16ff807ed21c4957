"""A real inference service for HTTP tests: EURUSD candles, materialized features, two registered LSTM versions
(production and a 30 % canary, both forced past a gate that rejected them), API keys, and `aicash serve` running
as a subprocess on 127.0.0.1 (helpers in tests/support/service.py); and one Bento built by `aicash serve --build`
for the session (`built_bento`)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import REPO
from tests.support.service import (
    AICASH,
    create_keys,
    environment,
    home_env,
    prepare_service_home,
    start_service,
    stop_service,
)
from tests.support.templates import DATABASES, copy_template, drop_copy, served_env, template_of


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


@pytest.fixture(scope="package", params=DATABASES)
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The served home, on SQLite and on PostgreSQL in cluster mode."""
    copy = copy_template(template_of(request), tmp_path_factory.mktemp(f"serving-{request.param}") / "home")
    extra = {"RATE_LIMIT_PER_MINUTE": "300", "CORS_ALLOW_ORIGINS": "https://app.aicash.example",
             "REGISTRY_RELOAD_SECONDS": "1", "PREDICTION_CACHE_TTL_SECONDS": "30", **served_env(copy)}
    keys = create_keys(copy.home, {"frontend": False, "ops": True, "gone": False, "busy": False}, revoke=("gone",),
                       database_url=copy.database_url)
    running = start_service(copy.home, extra)
    try:
        yield Service(running.url, running.env, keys["frontend"], keys["ops"], keys["gone"], keys["busy"],
                      copy.production, copy.canary, copy.database_url)
    finally:
        stop_service(running)
        drop_copy(copy)


@dataclass(frozen=True)
class BuiltBento:
    """A Bento built by `aicash serve --build` over a prepared home (its BentoML store is in the home)."""

    home: Path
    folder: Path
    tag: str
    production: str
    canary: str
    build_output: str
    build_seconds: float


@pytest.fixture(scope="session")
def built_bento(tmp_path_factory: pytest.TempPathFactory) -> BuiltBento:
    """One Bento per session; tests that change its registry work on a copy of the home."""
    home = tmp_path_factory.mktemp("bento-home")
    env = home_env(home)
    with environment(env):
        production, canary = prepare_service_home(home)
    started = time.perf_counter()
    done = subprocess.run([AICASH, "serve", "--build"], cwd=REPO, env=env, capture_output=True, text=True,  # noqa: S603
                          timeout=540, check=False)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [folder] = [p for p in (home / "bentoml" / "bentos" / "aicash-signal").iterdir() if p.is_dir()]
    return BuiltBento(home, folder, f"aicash-signal:{folder.name}", production, canary, done.stdout, seconds)
