"""The new-bar check of `POST /train` (`aicash.training.retrain`) and the `skipped` run it records, on SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from aicash.db.models import AuditLog, TrainingRun
from aicash.training.retrain import latest_bar, nothing_new
from aicash.training.runs import AuditEntry, record_skipped
from tests.support.guide import START, add_candles, make_production, register, trainer_metrics

END = START + timedelta(hours=200)


def test_no_production_version_means_train(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    add_candles(engine, END)
    register(engine, tmp_path, "v1", trainer_metrics(END))  # approved, never promoted
    assert nothing_new(engine, ["EURUSD"], "1h") is None


def test_no_bar_after_the_training_data_skips(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    add_candles(engine, END)
    make_production(engine, tmp_path, "v1", trainer_metrics(END))
    skip = nothing_new(engine, ["EURUSD"], "1h")
    assert skip is not None and skip.version == "v1" and skip.data_end == END and skip.latest_bar == END
    assert "no new bar since the production model v1's training data ended" in skip.reason
    assert "force_retrain" in skip.reason and "EURUSD/1h" in skip.reason


def test_a_new_bar_trains(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_production(engine, tmp_path, "v1", trainer_metrics(END))
    add_candles(engine, END + timedelta(hours=1))  # one bar newer than the data the model used
    assert latest_bar(engine, ["EURUSD"], "1h") == END + timedelta(hours=1)
    assert nothing_new(engine, ["EURUSD"], "1h") is None


def test_what_the_model_never_saw_trains(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Another series or timeframe than the production model's, or a model without its data range: train."""
    add_candles(engine, END)
    add_candles(engine, END, symbol="GBPUSD")
    make_production(engine, tmp_path, "v1", trainer_metrics(END))
    assert nothing_new(engine, ["EURUSD", "GBPUSD"], "1h") is None
    assert nothing_new(engine, ["EURUSD"], "4h") is None
    register(engine, tmp_path, "v2", {"aggregate": {}})
    from aicash.registry import promote

    promote(engine, "v2", 100, actor="test")
    assert nothing_new(engine, ["EURUSD"], "1h") is None


def test_the_latest_decision_bar_stands_in_for_an_older_metrics_file(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Metrics written before `last_bar_ts` existed: `last_ts` (the last decision bar) is the end, so bars the
    labels used count as new and the run starts (never skipped on a guess)."""
    metrics = trainer_metrics(END)
    del metrics["data"]["last_bar_ts"]  # last_ts is END - 4h
    make_production(engine, tmp_path, "v1", metrics)
    add_candles(engine, END - timedelta(hours=4))
    assert nothing_new(engine, ["EURUSD"], "1h") is not None
    add_candles(engine, END)
    assert nothing_new(engine, ["EURUSD"], "1h") is None


def test_a_skipped_run_is_recorded_closed_with_its_reason_and_audit(engine) -> None:  # type: ignore[no-untyped-def]
    run_id = record_skipped(engine, "lstm-training", {"symbols": ["EURUSD"], "timeframe": "1h"}, "nothing new",
                            audit=AuditEntry("api:ops", "training.skip", {"reason": "nothing new"}))
    with engine.connect() as conn:
        run = conn.execute(select(TrainingRun)).one()
        entry = conn.execute(select(AuditLog)).one()
    assert (run.id, run.status, run.error, run.params["symbols"]) == (run_id, "skipped", "nothing new", ["EURUSD"])
    assert run.finished_at is not None and run.model_version is None
    assert (entry.actor, entry.action, entry.details["run_id"]) == ("api:ops", "training.skip", run_id)
