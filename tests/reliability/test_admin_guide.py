"""The guide's admin calls in `bentos.admin.AdminOps`, without HTTP, on SQLite and PostgreSQL: `force_retrain` and
the skipped run, `traffic_percentage`, and `previous-version` (the guide's model rollback)."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from aicash.db.models import AuditLog, TrainingRun
from aicash.registry import current_production, promote
from aicash.settings import load_settings
from bentos.admin import AdminError, AdminOps, PromoteRequest, RollbackRequest, TrainRequest
from tests.support.guide import START, add_candles, make_production, register, trainer_metrics

END = START + timedelta(hours=200)


def runs(engine) -> list[tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(TrainingRun.status, TrainingRun.error).order_by(TrainingRun.id))]


def audit(engine, action: str) -> list[AuditLog]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return list(conn.execute(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def wait_idle(ops: AdminOps) -> None:
    deadline = time.monotonic() + 10
    while ops.status(1)["running_here"] is not None and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.fixture
def trained(engine, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A production model trained on EURUSD 1h up to END, and the candle store holding exactly those bars."""
    add_candles(engine, END)
    make_production(engine, tmp_path, "v1", trainer_metrics(END))
    return engine


def test_the_guides_bodies_validate() -> None:
    assert TrainRequest.model_validate({"force_retrain": True}).force_retrain is True
    assert TrainRequest().force_retrain is False and TrainRequest().arguments() == {"symbols": ["EURUSD"],
                                                                                   "timeframe": "1h"}
    assert PromoteRequest.model_validate({"traffic_percentage": 100}).traffic_percentage == 100


def test_nothing_new_is_skipped_and_recorded(trained) -> None:  # type: ignore[no-untyped-def]
    ops = AdminOps(load_settings(), trained, run_local=lambda *a: pytest.fail("a skipped run ran"))
    answer = ops.train(TrainRequest(), actor="api:ops")
    assert answer["status"] == "skipped" and answer["production_version"] == "v1"
    assert answer["training_data_end"] == END.isoformat() and answer["latest_bar"] == END.isoformat()
    assert "no new bar since the production model v1's training data ended" in answer["reason"]
    assert runs(trained) == [("skipped", answer["reason"])]
    [entry] = audit(trained, "training.skip")
    assert entry.actor == "api:ops" and entry.details["run_id"] == answer["run_id"]
    assert ops.status(5)["runs"][0]["status"] == "skipped"


def test_force_retrain_always_starts(trained) -> None:  # type: ignore[no-untyped-def]
    started: list[tuple[str, dict]] = []
    ops = AdminOps(load_settings(), trained, run_local=lambda run_id, name, args: started.append((name, args)))
    answer = ops.train(TrainRequest(force_retrain=True), actor="api:ops")
    wait_idle(ops)
    assert answer["status"] == "running" and isinstance(answer["run_id"], int)
    assert started == [("lstm-training", {"symbols": ["EURUSD"], "timeframe": "1h"})]
    assert runs(trained) == [("succeeded", None)]
    [entry] = audit(trained, "training.submit")
    assert entry.details["force_retrain"] is True and entry.details["run_id"] == answer["run_id"]


def test_a_new_bar_or_another_pipeline_starts(trained) -> None:  # type: ignore[no-untyped-def]
    ops = AdminOps(load_settings(), trained, run_local=lambda *a: None)
    assert ops.train(TrainRequest(pipeline="signal-weights"), actor="api:ops")["status"] == "running"
    wait_idle(ops)
    add_candles(trained, END + timedelta(hours=1))
    assert ops.train(TrainRequest(), actor="api:ops")["status"] == "running"
    wait_idle(ops)
    assert [s for s, _ in runs(trained)] == ["succeeded", "succeeded"]


def test_previous_version_is_the_rollback(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    register(trained, tmp_path, "v2", trainer_metrics(END))
    promote(trained, "v2", 100, actor="test")
    ops = AdminOps(load_settings(), trained)
    answer = ops.promote("previous-version", PromoteRequest(traffic_percentage=100, reason="guide rollback"),
                         actor="api:ops")
    assert answer["promoted"]["version"] == answer["production"]["version"] == "v1"
    assert answer["production"]["status"] == "production"
    assert current_production(trained).version == "v1"
    [entry] = audit(trained, "model.rollback")  # audited as POST /models/rollback is
    assert entry.actor == "api:ops" and entry.details == {"name": "signal-lstm", "new_production": "v1",
                                                         "demoted": "v2", "reason": "guide rollback"}
    # and it is a rollback: the next one (by either name) finds nothing earlier than v1
    with pytest.raises(AdminError) as none_left:
        ops.rollback(RollbackRequest(), actor="api:ops")
    assert none_left.value.status == 409


def test_previous_version_without_one_is_409_saying_why(trained) -> None:  # type: ignore[no-untyped-def]
    ops = AdminOps(load_settings(), trained)
    with pytest.raises(AdminError) as refused:
        ops.promote("previous-version", PromoteRequest(traffic_percentage=100), actor="api:ops")
    assert refused.value.status == 409
    assert "previous-version: no previous production version to promote" in refused.value.message
    assert "v1 is the first production version" in refused.value.message
    assert current_production(trained).version == "v1" and audit(trained, "model.rollback") == []


def test_previous_version_takes_all_the_traffic(trained) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AdminError) as refused:
        AdminOps(load_settings(), trained).promote("previous-version", PromoteRequest(traffic_percentage=30),
                                                   actor="api:ops")
    assert refused.value.status == 400 and refused.value.message.startswith("traffic_percentage:")
