"""One engine (one connection pool) per process and database, shared by every caller; the schema check in one
place."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from aicash.db import migrate
from aicash.db.engine import dispose_engines, engine_for, ready_engine
from aicash.settings import Settings, load_settings


def test_engine_for_is_shared_per_database(settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = engine_for(settings)
    assert engine_for(load_settings()) is first  # the same settings read again: the same pool
    other = engine_for(load_settings(database_url=f"sqlite:///{tmp_path / 'other.db'}"))
    assert other is not first and other.url.database.endswith("other.db")
    with first.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar_one() == 1
    dispose_engines()
    assert engine_for(settings) is not first  # forgotten: the next caller gets a new one


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_ready_engine_upgrades_local_mode(settings: Settings) -> None:
    engine = ready_engine(settings)
    assert engine is engine_for(settings)
    assert migrate.current_revision(engine) == migrate.head_revision()


@pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_ready_engine_refuses_an_old_schema_in_cluster_mode(settings: Settings) -> None:
    with pytest.raises(migrate.SchemaOutOfDateError, match="aicash db upgrade"):
        ready_engine(settings)
    migrate.upgrade(engine_for(settings))
    assert migrate.current_revision(ready_engine(settings)) == migrate.head_revision()
