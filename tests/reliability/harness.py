"""Start and stop the real inference service (`aicash serve`) as a subprocess on 127.0.0.1, on a home prepared
once per session by `tests.bentos.conftest._prepare` (EURUSD candles, features, two tiny registered versions) and
copied for each test package, so state-changing tests never share a registry."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.bentos.conftest import REPO, _prepare, environment, free_port

BASE_ENV = {
    "FEAST_USAGE": "False", "RATE_LIMIT_PER_MINUTE": "100000", "REGISTRY_RELOAD_SECONDS": "1",
    "PREDICTION_CACHE_TTL_SECONDS": "5",
}


@dataclass(frozen=True)
class Template:
    """A prepared home: the registry's production and canary versions."""

    home: Path
    production: str
    canary: str


def service_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment of a service on `home`: no inherited aicash setting, SQLite in the home."""
    from aicash.settings import Settings

    names = {n.upper() for n in Settings.model_fields}
    base = {k: v for k, v in os.environ.items() if k not in names}
    return base | BASE_ENV | {"AICASH_HOME": str(home), "BENTOML_HOME": str(home / "bentoml")} | dict(extra or {})


def prepare_template(home: Path) -> Template:
    with environment(service_env(home)):
        production, canary = _prepare(home)
    return Template(home, production, canary)


def copy_home(template: Template, dest: Path) -> Path:
    shutil.copytree(template.home, dest)
    return dest


def database_url(home: Path) -> str:
    return f"sqlite:///{home / 'aicash.db'}"


@dataclass
class Running:
    """A started service: its process, base URL, environment and log file."""

    proc: subprocess.Popen[bytes]
    url: str
    env: dict[str, str]
    log_path: Path
    keys: dict[str, str] = field(default_factory=dict)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def post(self, path: str, json: object = None, key: str = "frontend", **kw):  # type: ignore[no-untyped-def]
        headers = {"X-API-Key": self.keys[key]} | kw.pop("headers", {})
        return httpx.post(self.url + path, json=json, headers=headers, timeout=30, **kw)

    def get(self, path: str, key: str = "frontend", **kw):  # type: ignore[no-untyped-def]
        return httpx.get(self.url + path, headers={"X-API-Key": self.keys[key]}, timeout=30, **kw)


def start_service(home: Path, extra_env: Mapping[str, str] | None = None, log_name: str = "serve.log",
                  timeout: float = 120.0) -> Running:
    env = service_env(home, extra_env)
    port = free_port()
    log_path = home / log_name
    with log_path.open("w") as log:
        proc = subprocess.Popen(  # noqa: S603
            [str(Path(sys.executable).parent / "aicash"), "serve", "--port", str(port)],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    running = Running(proc, f"http://127.0.0.1:{port}", env, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("service exited:\n" + running.log_text()[-3000:])
        try:
            if httpx.get(running.url + "/readyz", timeout=1).status_code == 200:
                return running
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_service(running)
    raise AssertionError("service not ready:\n" + running.log_text()[-3000:])


def stop_service(running: Running, timeout: float = 30.0) -> int:
    """SIGTERM to the service's process group, SIGKILL if it has not exited within `timeout`."""
    if running.proc.poll() is None:
        os.killpg(running.proc.pid, signal.SIGTERM)
    try:
        return running.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(running.proc.pid, signal.SIGKILL)
        return running.proc.wait(10)


def create_keys(home: Path, names: Mapping[str, bool], revoke: tuple[str, ...] = ()) -> dict[str, str]:
    """Keys NAME -> plain key (admin when the value is True); the names in `revoke` are revoked."""
    from aicash.db.engine import make_engine
    from aicash.serving.keys import create_key, revoke_key

    engine = make_engine(database_url(home))
    try:
        keys = {name: create_key(engine, name, admin=admin, actor="test") for name, admin in names.items()}
        for name in revoke:
            revoke_key(engine, name, actor="test")
    finally:
        engine.dispose()
    return keys
