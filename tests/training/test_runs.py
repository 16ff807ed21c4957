"""`training_runs` updates on SQLite and PostgreSQL: closing a run (local or KFP's outcome), the version it is linked
to, the audit entry of a failure, and a closed run never reopened. The KFP side is in tests/pipelines/test_status.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from aicash.db.engine import session_scope
from aicash.db.models import AuditLog, MLModel, TrainingRun
from aicash.monitoring.window import utc
from aicash.training.runs import (
    KfpOutcome,
    finish_run,
    open_kfp_runs,
    record_kfp_outcomes,
    start_run,
)
from tests.support.runs import kfp_run

HOST = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"


def _model(engine: Engine, version: str, at: datetime) -> None:
    with session_scope(engine) as session:
        session.add(MLModel(name="signal-lstm", version=version, status="approved", created_at=at))


def _run(engine: Engine, run_id: int) -> TrainingRun:
    with engine.connect() as conn:
        return conn.execute(select(TrainingRun).where(TrainingRun.id == run_id)).one()  # type: ignore[return-value]


def _audits(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(AuditLog.action).order_by(AuditLog.id)).scalars())


def test_a_local_run_is_closed_now_and_linked_to_the_newest_version_since_it_started(engine: Engine) -> None:
    run_id = start_run(engine, "lstm-training", {})
    _model(engine, "v-old", datetime.now(UTC) - timedelta(hours=1))
    _model(engine, "v-new", datetime.now(UTC))
    assert finish_run(engine, run_id, "succeeded") == "v-new"
    assert (_run(engine, run_id).status, _audits(engine)) == ("succeeded", [])
    failed = start_run(engine, "signal-weights", {})
    assert finish_run(engine, failed, "failed", error="boom") is None
    assert finish_run(engine, failed, "succeeded") is None  # closed already: stays failed
    assert (_run(engine, failed).status, _run(engine, failed).error, _audits(engine)) == (
        "failed", "boom", ["training.failed"])


def test_only_a_failure_is_audited(engine: Engine) -> None:
    for status in ("cancelled", "skipped"):
        finish_run(engine, start_run(engine, "lstm-training", {}), status, finished_at=datetime.now(UTC))
    assert _audits(engine) == []


def test_kfp_outcomes_update_the_open_run_and_never_reopen_a_closed_one(engine: Engine) -> None:
    open_id = kfp_run(engine, "lstm-training", {"symbols": ["EURUSD"]}, kfp_id="a-1", host=HOST)
    closed_id = kfp_run(engine, "lstm-training", {}, kfp_id="b-2", host=HOST + "/")
    other_host = kfp_run(engine, "lstm-training", {}, kfp_id="c-3", host="http://127.0.0.1:8888")
    kfp_run(engine, "lstm-training", {}, kfp_id="job-1", host=HOST, cron="0 0 3 * * *")
    finish_run(engine, closed_id, "failed", error="recorded earlier")
    assert open_kfp_runs(engine, HOST) == [(open_id, "a-1")]
    assert open_kfp_runs(engine, "http://127.0.0.1:8888/") == [(other_host, "c-3")]

    finished = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=30)
    _model(engine, "v-late", finished + timedelta(seconds=5))  # registered after the run ended: not its version
    done = record_kfp_outcomes(engine, HOST, [
        KfpOutcome("a-1", "SUCCEEDED", "succeeded", finished_at=finished),
        KfpOutcome("b-2", "SUCCEEDED", "succeeded", finished_at=finished),
    ])

    assert [(d.run_id, d.status, d.kept, d.added) for d in done] == [
        (open_id, "succeeded", False, False), (closed_id, "failed", True, False)]
    opened = _run(engine, open_id)
    assert (opened.status, opened.model_version, utc(opened.finished_at)) == ("succeeded", None, finished)
    assert opened.params["kfp_state"] == "SUCCEEDED" and opened.params["symbols"] == ["EURUSD"]
    closed = _run(engine, closed_id)
    assert (closed.status, closed.error, "kfp_state" in closed.params) == ("failed", "recorded earlier", False)
    assert open_kfp_runs(engine, HOST) == []
