"""`bentos.admin.AdminOps` without HTTP, on SQLite and PostgreSQL: KFP submission when KFP_HOST is set, a local
run's success and failure, shutdown while a run is going, and reading a failing step's cause from its log."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from aicash.db.models import AuditLog, TrainingRun
from aicash.settings import load_settings
from bentos.admin import AdminError, AdminOps, TrainRequest
from pipelines.launch import PipelineFailedError, failure_cause
from tests.support.kfp_api import serve_kfp_api
from tests.support.net import free_port


def runs(engine) -> list[tuple[str, str | None, dict]]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(TrainingRun.status, TrainingRun.error, TrainingRun.params))]


def actions(engine) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(AuditLog.actor, AuditLog.action).order_by(AuditLog.id))]


def wait_idle(ops: AdminOps) -> None:
    deadline = time.monotonic() + 10
    while ops.status(1)["running_here"] is not None and time.monotonic() < deadline:
        time.sleep(0.02)


def test_kfp_host_submits_to_kfp(engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Through `pipelines.launch` to a real HTTP server speaking KFP's v2beta1 REST calls."""
    with serve_kfp_api() as api:
        monkeypatch.setenv("KFP_HOST", api.url)
        ops = AdminOps(load_settings(), engine, run_local=lambda *a: pytest.fail("ran locally"))
        answer = ops.train(TrainRequest(symbols=["EURUSD"], config={"max_epochs": 2}), actor="api:ops")
    assert answer["status"] == "submitted" and answer["kfp_run_id"] == "run-1" and answer["mode"] == "kfp"
    [run] = api.runs()
    assert run["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "lstm-training"  # beside its deadline
    assert run["runtime_config"]["parameters"] == {"symbols": ["EURUSD"], "timeframe": "1h",
                                                   "config_json": '{"max_epochs": 2}'}
    [(status, _error, params)] = runs(engine)
    assert status == "submitted" and params["kfp_run_id"] == "run-1" and params["kfp_host"] == api.url
    assert ("api:ops", "training.submit") in actions(engine)


def test_kfp_unreachable_is_502_and_the_run_is_recorded_failed(engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The run is recorded (with its audit entry) before KFP is asked; KFP's refusal closes it `failed` with KFP's
    error, and with no KFP id the status sync never asks KFP about it."""
    from aicash.training.runs import open_kfp_runs

    host = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("KFP_HOST", host)
    ops = AdminOps(load_settings(), engine)
    with pytest.raises(AdminError) as refused:
        ops.train(TrainRequest(), actor="api:ops")
    assert refused.value.status == 502 and f"KFP_HOST={host}" in refused.value.message
    [(status, error, params)] = runs(engine)
    assert status == "failed" and f"KFP at {host} refused or did not answer" in error
    assert "kfp_run_id" not in params and open_kfp_runs(engine, host) == []
    assert [a for _, a in actions(engine)] == ["training.submit", "training.failed"]


def _refuse_audit_inserts(engine) -> None:  # type: ignore[no-untyped-def]
    """A trigger that makes every insert into audit_log fail, as a full disk or a revoked grant would."""
    from sqlalchemy import text

    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS "
                              "$$ BEGIN RAISE EXCEPTION 'audit refused by the test'; END $$"))
            conn.execute(text("CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW "
                              "EXECUTE FUNCTION refuse_audit()"))
        else:
            conn.execute(text("CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log "
                              "BEGIN SELECT RAISE(ABORT, 'audit refused by the test'); END"))


def test_a_failed_audit_write_submits_nothing_and_records_nothing(engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """KFP mode and local mode: the run's row and its `training.submit` entry are one transaction, written before
    anything starts; when the entry cannot be written the answer is 503 and nothing ran, nothing was recorded."""
    _refuse_audit_inserts(engine)
    with serve_kfp_api() as api:
        monkeypatch.setenv("KFP_HOST", api.url)
        ops = AdminOps(load_settings(), engine, run_local=lambda *a: pytest.fail("ran locally"))
        with pytest.raises(AdminError) as refused:
            ops.train(TrainRequest(), actor="api:ops")
        assert api.runs() == []  # KFP was never asked
    assert refused.value.status == 503 and refused.value.headers["Retry-After"]
    assert "audit entry" in refused.value.message
    monkeypatch.delenv("KFP_HOST")
    ops = AdminOps(load_settings(), engine, run_local=lambda *a: pytest.fail("ran locally"))
    with pytest.raises(AdminError) as refused:
        ops.train(TrainRequest(), actor="api:ops")
    assert refused.value.status == 503 and ops.status(1)["running_here"] is None
    assert runs(engine) == [] and actions(engine) == []


def test_local_run_success_and_failure_are_recorded(engine) -> None:  # type: ignore[no-untyped-def]
    outcomes = iter([None, PipelineFailedError("pipeline lstm-training failed (exit code 1): ValueError: bad")])

    def run_local(run_id: int, name: str, arguments: dict) -> None:
        if (outcome := next(outcomes)) is not None:
            raise outcome

    ops = AdminOps(load_settings(), engine, run_local=run_local)
    ops.train(TrainRequest(), actor="api:ops")
    wait_idle(ops)
    ops.train(TrainRequest(pipeline="signal-weights"), actor="api:ops")
    wait_idle(ops)
    assert [(s, e) for s, e, _ in runs(engine)] == [
        ("succeeded", None), ("failed", "pipeline lstm-training failed (exit code 1): ValueError: bad")]
    assert [a for _, a in actions(engine)] == ["training.submit", "training.submit", "training.failed"]


def test_shutdown_records_a_running_run_as_failed(engine) -> None:  # type: ignore[no-untyped-def]
    stuck = threading.Event()
    ops = AdminOps(load_settings(), engine, run_local=lambda *a: stuck.wait(30))
    ops.shutdown_wait_seconds = 0.1
    ops.train(TrainRequest(), actor="api:ops")
    with pytest.raises(AdminError) as busy:
        ops.train(TrainRequest(), actor="api:ops")
    assert busy.value.status == 409
    ops.close()
    stuck.set()
    [(status, error, _)] = runs(engine)
    assert status == "failed" and "shut down" in str(error)


def test_failure_cause_skips_kfps_summary() -> None:
    log = (
        "\x1b[96mTask 'build-training-set'\x1b[0m\nTraceback (most recent call last):\n"
        "    ValueError: no 1h candles for ['GBPUSD']: run `aicash data ingest` first\n"
        "RuntimeError: Pipeline 'lstm-training' finished with status FAILURE. Inner task failed: 'build'.\n"
    )
    assert failure_cause(log) == "ValueError: no 1h candles for ['GBPUSD']: run `aicash data ingest` first"
    assert failure_cause("nothing useful") == "no error line in the log"
