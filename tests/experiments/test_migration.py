"""Migration 0005_experiments on SQLite and PostgreSQL (up, down, up again) and, on PostgreSQL, what each workload's
role may do with the two tables: training records experiments, the others only read them."""

from __future__ import annotations

from sqlalchemy import inspect

from aicash.db import migrate
from aicash.db.engine import make_engine
from aicash.experiments import get_experiment, link_version
from tests.support.experiments import record
from tests.support.roles import attempt, login_url

TABLES = {"experiments", "experiment_trials"}
ROLES = ("aicash_serving", "aicash_training", "aicash_monitoring", "aicash_readonly")


def test_head_is_0005_and_up_down_up(db_url: str) -> None:
    engine = make_engine(db_url)
    assert migrate.head_revision() == "0005_experiments"
    migrate.upgrade(engine)
    assert set(inspect(engine).get_table_names()) >= TABLES
    experiment_id = record(engine)
    migrate.downgrade(engine, "0004_roles")
    assert migrate.current_revision(engine) == "0004_roles"
    assert not TABLES & set(inspect(engine).get_table_names())
    assert "ml_models" in inspect(engine).get_table_names()
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == "0005_experiments"
    assert record(engine) == experiment_id  # empty tables again: the first id once more
    engine.dispose()


STATEMENTS = {
    "SELECT": "SELECT e.id, t.number FROM experiments e JOIN experiment_trials t ON t.experiment_id = e.id",
    "INSERT": "WITH e AS (INSERT INTO experiments (pipeline, series, timeframe, space, sampler, trials, "
              "selected_trial, family, params, search, reasons, created_at) VALUES ('model-search', '[\"X\"]', '1h', "
              "'{}', 'grid', 1, 1, 'gru', '{}', '{}', '[]', now()) RETURNING id) "
              "INSERT INTO experiment_trials (experiment_id, number, family, params, selected) "
              "SELECT id, 1, 'gru', '{}', true FROM e",
    "UPDATE": "UPDATE experiments SET decision = 'approved'",
    "DELETE": "DELETE FROM experiment_trials",
}
ALLOWED: dict[str, set[str]] = {"aicash_training": {"SELECT", "INSERT", "UPDATE"}, "aicash_serving": set(),
                                 "aicash_monitoring": set(), "aicash_readonly": {"SELECT"}}


def test_what_each_role_may_do(fresh_postgres_db: str) -> None:
    engine = make_engine(fresh_postgres_db)
    migrate.upgrade(engine)
    record(engine)
    for role in ROLES:
        url = login_url(fresh_postgres_db, role)
        assert {op for op, sql in STATEMENTS.items() if attempt(url, sql)} == ALLOWED[role], role
        assert not attempt(url, "TRUNCATE experiments CASCADE"), role
        assert not attempt(url, "ALTER TABLE experiments ADD COLUMN mine int"), role
    engine.dispose()


def test_training_records_and_links_through_the_store(fresh_postgres_db: str) -> None:
    """The pipeline's own calls, as the training login: record (INSERT ... RETURNING id), link (UPDATE)."""
    owner = make_engine(fresh_postgres_db)
    migrate.upgrade(owner)
    training = make_engine(login_url(fresh_postgres_db, "aicash_training"))
    experiment_id = record(training)
    link_version(training, experiment_id, "v1", "approved", [])
    readonly = make_engine(login_url(fresh_postgres_db, "aicash_readonly"))
    assert get_experiment(readonly, experiment_id)["decision"] == "approved"
    for engine in (readonly, training):
        engine.dispose()
    owner.dispose()
