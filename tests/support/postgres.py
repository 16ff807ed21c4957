"""Which tests run against a real PostgreSQL server (they carry the `postgres` marker)."""

from __future__ import annotations

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
