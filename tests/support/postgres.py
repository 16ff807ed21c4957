"""Which tests run against a real PostgreSQL server (they carry the `postgres` marker)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# The fixtures of tests/conftest.py that give a test a PostgreSQL server or database; a fixture depending on one of
# them is in a test's fixture closure together with it.
POSTGRES_FIXTURES = frozenset({"postgres_url", "fresh_postgres_db", "stoppable_postgres"})


def uses_postgres(item: Any) -> bool:
    """A PostgreSQL fixture in the test item's fixture closure, or a fixture parametrised "postgresql" (as `db_url`
    is; it asks for `fresh_postgres_db` at run time, so that one is not in the closure)."""
    if POSTGRES_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return True
    params = getattr(getattr(item, "callspec", None), "params", {})
    return any(isinstance(value, str) and value == "postgresql" for value in params.values())


def create_database(server_url: str, prefix: str = "aicash_test", template: str | None = None) -> str:
    """A new database on the server at `server_url` (a copy of the database `template` when given; nobody may be
    connected to it); returns its URL."""
    import uuid

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    source = f' TEMPLATE "{template}"' if template else ""
    with _admin(server_url) as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{source}'))
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    """Drop the database of `url`, whoever is still connected to it."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    with _admin(url) as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))


@contextmanager
def _admin(url: str) -> Iterator[Any]:
    """An autocommit connection to the server's `postgres` database (CREATE/DROP DATABASE run outside one)."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    engine = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()
