"""Engines and sessions for the configured database (SQLite locally, PostgreSQL in the cluster)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from aicash.db import migrate
from aicash.settings import Settings


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL and foreign keys, PostgreSQL a pre-pinged pool."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


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
