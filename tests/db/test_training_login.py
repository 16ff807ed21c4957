"""The training pipelines end to end with KFP's local runner as a login in aicash_training, on a cluster-mode home
whose database the owner prepared (migrations, candles, `features apply`): lstm-training's first step rewrites the
offline tables (TRUNCATE + COPY), materializes the online store and records the interval in Feast's registry, all
without DDL on the owner's tables; signal-weights reads the trades and writes weights."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, text
from typer.testing import CliRunner

from aicash.cli.main import app
from aicash.db.engine import dispose_engines, make_engine
from aicash.db.models import MLModel, SignalWeights, TrainingRun
from tests.support.roles import login_name, login_url
from tests.support.service import Template, environment, home_env

SMALL = json.dumps({"max_epochs": 2, "n_folds": 2, "hidden_size": 16, "patience": 1})
TRAINING = login_name("aicash_training")


def run_as_training(copy: Template, *args: str):  # type: ignore[no-untyped-def]
    env = home_env(copy.home, {"DATABASE_URL": login_url(copy.database_url, "aicash_training")})
    with environment(env):
        try:
            return CliRunner().invoke(app, list(args), catch_exceptions=False)
        finally:
            dispose_engines()


def owner_rows(copy: Template, query: str) -> list[tuple]:  # type: ignore[type-arg]
    owner = make_engine(copy.database_url)
    with owner.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(query))]
    owner.dispose()
    return rows


@pytest.mark.slow
def test_lstm_training_runs_under_a_training_login(copy: Template) -> None:
    before = owner_rows(copy, "SELECT count(*) FROM feast.candle_indicators")[0][0]
    result = run_as_training(copy, "pipeline", "run", "lstm-training", "--symbol", "EURUSD", "--config", SMALL)
    assert result.exit_code == 0, result.output + result.stderr
    owner = make_engine(copy.database_url)
    with owner.connect() as conn:
        runs = conn.execute(select(TrainingRun.status, TrainingRun.model_version)
                            .where(TrainingRun.pipeline == "lstm-training")).all()
        versions = set(conn.execute(select(MLModel.version)).scalars())
    owner.dispose()
    [(status, version)] = runs
    assert status == "succeeded" and version in versions
    # the offline tables were rewritten in place: still the owner's, same rows, and the key kept
    tables = owner_rows(copy, "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'feast' "
                              "AND tablename IN ('candle_indicators', 'indicator_windows') ORDER BY 1")
    assert [t for t, _ in tables] == ["candle_indicators", "indicator_windows"]
    assert all(owner != TRAINING for _, owner in tables)
    assert owner_rows(copy, "SELECT count(*) FROM feast.candle_indicators")[0][0] == before > 0
    keys = owner_rows(copy, "SELECT conname FROM pg_constraint WHERE contype = 'p' "
                            "AND conrelid = 'feast.candle_indicators'::regclass")
    assert len(keys) == 1
    # the online store holds the materialized rows, and no table in feast belongs to the training login
    online = owner_rows(copy, "SELECT tablename FROM pg_tables WHERE schemaname = 'feast' "
                              "AND tablename LIKE 'aicash_%'")
    assert online and all(owner_rows(copy, f"SELECT count(*) FROM feast.{t}")[0][0] > 0 for (t,) in online)  # noqa: S608
    assert owner_rows(copy, f"SELECT tablename FROM pg_tables WHERE tableowner = '{TRAINING}'") == []  # noqa: S608


@pytest.mark.slow
def test_signal_weights_runs_under_a_training_login(copy: Template) -> None:
    result = run_as_training(copy, "pipeline", "run", "signal-weights", "--symbol", "EURUSD")
    assert result.exit_code == 0, result.output + result.stderr
    owner = make_engine(copy.database_url)
    with owner.connect() as conn:
        runs = conn.execute(select(TrainingRun.status).where(TrainingRun.pipeline == "signal-weights")).all()
        weights = conn.execute(select(SignalWeights.version)).scalars().all()
    owner.dispose()
    assert [r.status for r in runs] == ["succeeded"]
    assert "saved version" in result.output or "not saved" in result.output or weights
