"""Migrations on SQLite and PostgreSQL: up, down, back up; and the models agree with the migrations."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from aicash.db import migrate
from aicash.db.engine import make_engine
from aicash.db.models import Base

TABLES = {
    "market_candles", "ml_models", "training_runs", "predictions", "trades", "signal_weights", "api_keys", "audit_log",
}


def test_upgrade_downgrade_round_trip(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert set(inspect(engine).get_table_names()) >= TABLES

    migrate.downgrade(engine, "base")
    assert migrate.current_revision(engine) is None
    assert not TABLES & set(inspect(engine).get_table_names())

    migrate.upgrade(engine)
    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()


def test_models_match_migrations(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    engine.dispose()


def test_cli_upgrade_and_downgrade(cli, settings) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(settings.sqlalchemy_url)
    down = cli("db", "downgrade", "base")
    assert down.exit_code == 0 and "None" in down.stdout
    assert "market_candles" not in inspect(engine).get_table_names()
    up = cli("db", "upgrade")
    assert up.exit_code == 0 and migrate.head_revision() in up.stdout
    assert "market_candles" in inspect(engine).get_table_names()
    assert cli("db", "downgrade", "no-such-rev").exit_code == 2
    engine.dispose()


def test_cluster_mode_refuses_an_unmigrated_database(fresh_postgres_db, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from aicash.cli.main import app

    monkeypatch.setenv("DATABASE_URL", fresh_postgres_db)
    monkeypatch.setenv("AICASH_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["data", "list"])
    assert result.exit_code == 2 and "aicash db upgrade" in result.stderr
