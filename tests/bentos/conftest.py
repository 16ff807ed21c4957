"""A real inference service for HTTP tests: EURUSD candles, materialized features, two registered LSTM versions
(production and a 30 % canary, both forced past a gate that rejected them), API keys, and `aicash serve` running
as a subprocess on 127.0.0.1 (helpers in tests/support/service.py)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support.service import (
    create_keys,
    environment,
    home_database_url,
    prepare_service_home,
    service_env,
    start_service,
    stop_service,
)


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


@pytest.fixture(scope="package")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    home = tmp_path_factory.mktemp("serving-home")
    extra = {"RATE_LIMIT_PER_MINUTE": "300", "CORS_ALLOW_ORIGINS": "https://app.aicash.example",
             "REGISTRY_RELOAD_SECONDS": "1", "PREDICTION_CACHE_TTL_SECONDS": "30"}
    with environment(service_env(home, extra)):
        production, canary = prepare_service_home(home)
    keys = create_keys(home, {"frontend": False, "ops": True, "gone": False, "busy": False}, revoke=("gone",))
    running = start_service(home, extra)
    try:
        yield Service(running.url, running.env, keys["frontend"], keys["ops"], keys["gone"], keys["busy"], production,
                      canary, home_database_url(home))
    finally:
        stop_service(running)
