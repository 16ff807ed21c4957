"""Engines and sessions for the configured database (SQLite locally, PostgreSQL in the cluster), and how to tell
that it cannot be reached (a state to report, not a crash)."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from aicash.db import migrate
from aicash.settings import Settings


def json_text(value: Any) -> str:
    """The text of a JSON column's value, written by orjson: a prediction log row's three documents cost about 1 µs
    instead of 16 µs with the standard library. NaN and infinities become null (JSON has neither: PostgreSQL's
    JSONB refuses them, SQLite's JSON functions reject a document holding them); numpy numbers are numbers. A value
    orjson refuses (an integer beyond 64 bits, a type it does not know) is left to the standard library, which
    writes it as before or raises as before."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value)


def make_engine(url: str) -> Engine:
    """An engine for `url` whose JSON columns are written by `json_text`; SQLite gets WAL and foreign keys,
    PostgreSQL a pre-pinged pool."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, json_serializer=json_text)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, json_serializer=json_text)


_ENGINES: dict[str, Engine] = {}
_ENGINES_LOCK = threading.Lock()


def engine_for(settings: Settings) -> Engine:
    """The process's one engine (one connection pool) for the settings' database, made on first use and shared by
    every caller after that; creates AICASH_HOME for a local SQLite file. Callers need not dispose it (disposing
    only closes its pooled connections)."""
    url = settings.sqlalchemy_url
    with _ENGINES_LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            if settings.database_backend == "sqlite":
                settings.aicash_home.mkdir(parents=True, exist_ok=True)
            engine = _ENGINES[url] = make_engine(url)
        return engine


def ready_engine(settings: Settings) -> Engine:
    """The shared engine with its schema at the migrations' head: upgraded on the fly in local mode, checked in
    cluster mode (`migrate.SchemaOutOfDateError` names the fix)."""
    engine = engine_for(settings)
    migrate.ensure_schema(engine, auto_upgrade=settings.mode == "local")
    return engine


def dispose_engines() -> None:
    """Close every shared engine's pooled connections and forget the engines (tests, forked children)."""
    with _ENGINES_LOCK:
        engines = list(_ENGINES.values())
        _ENGINES.clear()
    for engine in engines:
        engine.dispose()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session committed on success and rolled back on any error."""
    session = sessionmaker(engine, expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# -- an unreachable database ---------------------------------------------------------------------------------------
# SQLSTATE classes of a server that is there but will not serve this connection: 08 connection exception, 28 invalid
# authorization, 3D invalid catalog (no such database), 53 insufficient resources (too many connections), 57P
# shutting down or starting up. A driver error without a SQLSTATE never reached a server (refused, timed out, DNS).
_UNREACHABLE_SQLSTATES = ("08", "28", "3D", "53", "57P")


def is_unreachable(exc: BaseException) -> bool:
    """Whether `exc` means the PostgreSQL database could not be reached or dropped the connection, as opposed to a
    statement's own fault (a bad query, a constraint) that must surface as it is."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if not isinstance(exc, OperationalError | InterfaceError) or not type(exc.orig).__module__.startswith("psycopg"):
        return False  # a statement's fault; SQLite's errors are about a local file or a statement, never an outage
    code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
    return code is None or str(code).startswith(_UNREACHABLE_SQLSTATES)


def describe_database(url: str) -> str:
    """The database in words, never its password: `PostgreSQL at host:port/name (user u)` or `SQLite file path`."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite file {parsed.database}"
    host = parsed.host or parsed.query.get("host") or "localhost"
    port = parsed.port or parsed.query.get("port") or 5432
    user = f" (user {parsed.username})" if parsed.username else ""
    return f"PostgreSQL at {host}:{port}/{parsed.database or ''}{user}"


def _cause(exc: BaseException) -> str:
    """The driver's reason on one line (`Connection refused`, `FATAL: password authentication failed ...`)."""
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    reason = re.sub(r"^.* failed: ", "", first)  # psycopg: `connection failed: connection to server at ... failed: `
    return re.sub(r"\s+", " ", reason).strip() or type(orig).__name__


def unreachable_message(exc: BaseException, url: str) -> str:
    """One short error naming the database (password masked), the driver's reason and the fix."""
    parsed = make_url(url)
    reason = _cause(exc)
    if parsed.password:
        reason = reason.replace(str(parsed.password), "***")
    return (f"the database is unreachable: {describe_database(url)}: {reason}. Check DATABASE_URL "
            f"({parsed.render_as_string(hide_password=True)}) and that PostgreSQL is running and accepts "
            "connections from here (docs/runbook.md, 'Database unreachable').")


@dataclass(frozen=True)
class ConnectionCheck:
    """What `aicash db check` reports: the time to connect, one `SELECT 1` round trip, the schema revision."""

    connect_ms: float
    round_trip_ms: float
    revision: str | None


def check_connection(engine: Engine) -> ConnectionCheck:
    """Connect (a new connection when the pool is empty, as in a fresh process), time that and one round trip,
    and read the schema revision."""
    from alembic.runtime.migration import MigrationContext

    started = time.perf_counter()
    with engine.connect() as conn:
        connected = time.perf_counter()
        conn.execute(text("SELECT 1")).scalar_one()
        answered = time.perf_counter()
        revision = MigrationContext.configure(conn).get_current_revision()
    return ConnectionCheck((connected - started) * 1000, (answered - connected) * 1000, revision)
