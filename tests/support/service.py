"""The real inference service under test.

A home prepared once (`prepare_service_home`: EURUSD candles, materialized features, two tiny registered
versions, production (an LSTM) and a 30 % canary (LightGBM: the service serves every family), both forced past a
gate that rejected them), the process environment of a service on a home (`home_env`, `service_env`), and
`aicash serve` started and stopped as a subprocess on 127.0.0.1 (`launch_service`, `start_service`,
`stop_service`). `prepare_template` and `copy_home` prepare a home once and copy it for each test package, so
state-changing tests never share a registry.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from aicash.settings import Settings
from tests.support import REPO
from tests.support.net import free_port

AICASH = str(Path(sys.executable).parent / "aicash")
SETTINGS_ENV = frozenset(name.upper() for name in Settings.model_fields)
# What a started service runs with unless a test says otherwise: no rate limit in the way, fast registry reloads.
SERVICE_DEFAULTS = {
    "RATE_LIMIT_PER_MINUTE": "100000", "REGISTRY_RELOAD_SECONDS": "1", "PREDICTION_CACHE_TTL_SECONDS": "5",
}
# Known secret values: a service runs with them and no log, output or table may ever show them.
SMTP_PASSWORD = "smtp-Pa55-never-logged-91c7"
AWS_SECRET = "aws-Secret-never-logged-4d2e"
# Tiny training runs for the two registered versions.
_TRAINING = {"max_epochs": 2, "n_folds": 2, "hidden_size": 8, "patience": 1}


def home_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A process environment on `home`: this process's without any aicash setting, AICASH_HOME (SQLite there) and
    BENTOML_HOME in the home, Feast's usage reporting off; then `extra`."""
    base = {k: v for k, v in os.environ.items() if k not in SETTINGS_ENV}
    own = {"AICASH_HOME": str(home), "BENTOML_HOME": str(home / "bentoml"), "FEAST_USAGE": "False"}
    return base | own | dict(extra or {})


def service_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """`home_env` with SERVICE_DEFAULTS, then `extra`."""
    return home_env(home, SERVICE_DEFAULTS | dict(extra or {}))


def home_database_url(home: Path) -> str:
    """The SQLite database of a home prepared without DATABASE_URL."""
    return f"sqlite:///{home / 'aicash.db'}"


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


def use_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    """The test's own process environment becomes `home_env(home)` (undone after the test)."""
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in home_env(home).items():
        monkeypatch.setenv(name, value)


def prepare_service_home(home: Path) -> tuple[str, str]:
    """Candles, features and two trained versions in the registry of the current settings (run it inside
    `environment(...)`); returns (production, canary)."""
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
    for seed, family in ((1, "lstm"), (2, "lightgbm")):
        result = train_and_evaluate(frame, TrainingConfig(**_TRAINING, seed=seed, family=family))
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


@dataclass(frozen=True)
class Template:
    """A prepared home: the registry's production and canary versions, and its database (the home's SQLite, or a
    PostgreSQL database in cluster mode: tests/support/templates.py)."""

    home: Path
    production: str
    canary: str
    database_url: str


def prepare_template(home: Path) -> Template:
    with environment(service_env(home)):
        production, canary = prepare_service_home(home)
    return Template(home, production, canary, home_database_url(home))


def copy_home(template: Template, dest: Path) -> Path:
    shutil.copytree(template.home, dest)
    return dest


def create_keys(home: Path, names: Mapping[str, bool], revoke: tuple[str, ...] = (),
                database_url: str | None = None) -> dict[str, str]:
    """Keys NAME -> plain key (admin when the value is True) in the home's database (or `database_url`); the names
    in `revoke` are revoked."""
    from aicash.db.engine import make_engine
    from aicash.serving.keys import create_key, revoke_key

    engine = make_engine(database_url or home_database_url(home))
    try:
        keys = {name: create_key(engine, name, admin=admin, actor="test") for name, admin in names.items()}
        for name in revoke:
            revoke_key(engine, name, actor="test")
    finally:
        engine.dispose()
    return keys


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

    @property
    def database_url(self) -> str:
        """The service's database: DATABASE_URL, or its home's SQLite."""
        return self.env.get("DATABASE_URL") or home_database_url(self.log_path.parent)

    def post(self, path: str, json: object = None, key: str = "frontend", **kw):  # type: ignore[no-untyped-def]
        headers = {"X-API-Key": self.keys[key]} | kw.pop("headers", {})
        return httpx.post(self.url + path, json=json, headers=headers, timeout=30, **kw)

    def get(self, path: str, key: str = "frontend", **kw):  # type: ignore[no-untyped-def]
        return httpx.get(self.url + path, headers={"X-API-Key": self.keys[key]}, timeout=30, **kw)


def launch_service(home: Path, env: dict[str, str], log_name: str = "serve.log",
                   command: list[str] | None = None, cwd: Path = REPO) -> Running:
    """`aicash serve` (or `command`, to which `--host 127.0.0.1 --port N` is added) with exactly `env` on a free
    port, in its own process group, logging to `home/log_name`; returns at once (`start_service` waits until it is
    ready)."""
    port = free_port()
    log_path = home / log_name
    with log_path.open("w") as log:
        proc = subprocess.Popen(  # noqa: S603
            [*(command or [AICASH, "serve"]), "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    return Running(proc, f"http://127.0.0.1:{port}", env, log_path)


def start_service(home: Path, extra_env: Mapping[str, str] | None = None, log_name: str = "serve.log",
                  timeout: float = 120.0, *, env: dict[str, str] | None = None, command: list[str] | None = None,
                  cwd: Path = REPO) -> Running:
    """A service on `home` with `service_env(home, extra_env)` (or exactly `env`), once its /readyz answers 200."""
    running = launch_service(home, env or service_env(home, extra_env), log_name, command, cwd)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if running.proc.poll() is not None:
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
