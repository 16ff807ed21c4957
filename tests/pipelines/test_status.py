"""`aicash pipeline status`: KFP runs' outcomes read back through `kfp.Client.get_run` from a real HTTP server
speaking KFP's v2beta1 REST API (tests/support/kfp_api.py), written into `training_runs` on SQLite and PostgreSQL;
and `aicash monitor check`, which syncs them before its rules, so the training-failure alert sees a cluster failure.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kfp_server_api import V2beta1RuntimeState
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select

from aicash.db.engine import session_scope
from aicash.db.models import AuditLog, MLModel, TrainingRun
from aicash.monitoring import status as st
from aicash.monitoring.window import utc
from pipelines.status import STATUS_OF, KfpStatusError, sync
from tests.support.kfp_api import KfpApi, run_state, serve_kfp_api
from tests.support.net import free_port
from tests.support.runs import kfp_run

ARGUMENTS = {"symbols": ["EURUSD"], "timeframe": "1h"}


@pytest.fixture
def kfp_api() -> Iterator[KfpApi]:
    with serve_kfp_api() as api:
        yield api


def _kfp_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # KFP's RFC 3339, whole seconds


def _submitted(engine: Engine, api: KfpApi, *kfp_ids: str) -> list[int]:
    return [kfp_run(engine, "lstm-training", ARGUMENTS, kfp_id=k, host=api.url) for k in kfp_ids]


def _rows(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(
            select(TrainingRun.id, TrainingRun.pipeline, TrainingRun.status, TrainingRun.params, TrainingRun.error,
                   TrainingRun.model_version, TrainingRun.started_at, TrainingRun.finished_at)
            .order_by(TrainingRun.id))]


def _run(engine: Engine, run_id: int) -> TrainingRun:
    with engine.connect() as conn:
        return conn.execute(select(TrainingRun).where(TrainingRun.id == run_id)).one()  # type: ignore[return-value]


def _failed_audits(engine: Engine) -> list[AuditLog]:
    with engine.connect() as conn:
        return list(conn.execute(select(AuditLog).where(AuditLog.action == "training.failed")).all())  # type: ignore[arg-type]


def test_every_kfp_state_has_its_status() -> None:
    assert set(STATUS_OF) == set(V2beta1RuntimeState.allowable_values)
    assert STATUS_OF == {
        "RUNTIME_STATE_UNSPECIFIED": None, "PENDING": "running", "RUNNING": "running", "PAUSED": "running",
        "CANCELING": "running", "SUCCEEDED": "succeeded", "FAILED": "failed", "SKIPPED": "skipped",
        "CANCELED": "cancelled"}  # fmt: skip


def test_a_submitted_run_goes_running_then_failed_and_the_alert_fires(cli, engine: Engine, kfp_api: KfpApi,  # type: ignore[no-untyped-def]
                                                                     tmp_path: Path) -> None:
    submitted = cli("pipeline", "submit", "lstm-training", "--host", kfp_api.url)
    assert submitted.exit_code == 0, submitted.output + submitted.stderr
    [(run_id, *_)] = _rows(engine)
    finished = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    error = "train: ValueError: no candles for EURUSD/1h between 2026-01-01 and 2026-02-01"
    kfp_api.states["run-1"] = ["PENDING", "RUNNING", run_state("FAILED", error=error, finished_at=_kfp_time(finished))]
    assert _run(engine, run_id).status == "submitted"

    first = cli("pipeline", "status", "--host", kfp_api.url)
    assert first.exit_code == 0, first.output + first.stderr
    run = _run(engine, run_id)
    assert (run.status, run.params["kfp_state"], run.finished_at, run.error) == ("running", "PENDING", None, None)
    assert run.params["kfp_created_at"] == "2026-12-06T10:00:00+00:00"
    assert cli("pipeline", "status", "--host", kfp_api.url).exit_code == 0
    assert (_run(engine, run_id).status, _run(engine, run_id).params["kfp_state"]) == ("running", "RUNNING")
    assert not _failed_audits(engine)

    last = cli("pipeline", "status", "--host", kfp_api.url)

    assert last.exit_code == 0, last.output + last.stderr
    assert "FAILED" in last.stdout and "run-1" in last.stdout
    run = _run(engine, run_id)
    assert (run.status, run.error, run.model_version) == ("failed", error, None)
    assert utc(run.finished_at) == finished  # KFP's time, not the sync's
    assert run.params["kfp_state"] == "FAILED" and run.params["kfp_finished_at"] == finished.isoformat()
    assert run.params["kfp_run_id"] == "run-1" and run.params["symbols"] == ["EURUSD"]
    [audit] = _failed_audits(engine)
    assert (audit.target, audit.details) == ("lstm-training", {"run_id": run_id, "error": error})
    assert ("GET", "/apis/v2beta1/runs/run-1") in [(m, p) for m, p, _, _ in kfp_api.requests]

    textfile = tmp_path / "aicash.prom"
    check = cli("monitor", "check", "--no-latency", "--textfile", str(textfile))
    assert check.exit_code == 1, check.output
    assert "AicashTrainingFailed" in check.stdout and "firing" in check.stdout
    families = {f.name: f for f in text_string_to_metric_families(textfile.read_text())}
    assert families[st.TRAINING_FAILED].samples[0].value == 1

    # closed: no longer open, and an older state read later does not reopen it (nor write a second audit entry)
    assert "no open KFP run" in cli("pipeline", "status", "--host", kfp_api.url).stdout
    kfp_api.states["run-1"], kfp_api.reads["run-1"] = ["RUNNING"], 0
    again = cli("pipeline", "status", "--host", kfp_api.url, "run-1")
    assert again.exit_code == 0 and "(unchanged)" in again.stdout
    assert _run(engine, run_id).status == "failed" and len(_failed_audits(engine)) == 1


def test_a_succeeded_run_is_linked_to_the_version_registered_while_it_ran(cli, engine: Engine,  # type: ignore[no-untyped-def]
                                                                         kfp_api: KfpApi) -> None:
    [run_id] = _submitted(engine, kfp_api, "run-ok")
    started = utc(_run(engine, run_id).started_at)
    finished = started.replace(microsecond=0) + timedelta(seconds=60)
    with session_scope(engine) as session:  # before the run, during it, after KFP says it finished
        for version, at in (("v-before", started - timedelta(hours=1)), ("v-run", started + timedelta(seconds=20)),
                            ("v-after", finished + timedelta(seconds=30))):
            session.add(MLModel(name="signal-lstm", version=version, status="approved", created_at=at))
    kfp_api.states["run-ok"] = [run_state("SUCCEEDED", finished_at=_kfp_time(finished))]

    result = cli("pipeline", "status", "--host", kfp_api.url)

    assert result.exit_code == 0, result.output + result.stderr
    run = _run(engine, run_id)
    assert (run.status, run.model_version, run.error) == ("succeeded", "v-run", None)
    assert utc(run.finished_at) == finished and run.params["kfp_state"] == "SUCCEEDED"
    assert "v-run" in result.stdout and not _failed_audits(engine)


def test_kfp_states_map_to_statuses_and_an_unspecified_state_leaves_the_row(cli, engine: Engine,  # type: ignore[no-untyped-def]
                                                                           kfp_api: KfpApi) -> None:
    finished = _kfp_time(datetime.now(UTC))
    states = {"canceled": run_state("CANCELED", finished_at=finished),
              "skipped": run_state("SKIPPED", finished_at=finished), "paused": "PAUSED", "canceling": "CANCELING",
              "unspecified": "RUNTIME_STATE_UNSPECIFIED"}
    ids = dict(zip(states, _submitted(engine, kfp_api, *states), strict=True))
    kfp_api.states.update({k: [v] for k, v in states.items()})
    before = {row[0]: row for row in _rows(engine)}

    result = cli("pipeline", "status", "--host", kfp_api.url)

    assert result.exit_code == 0, result.output + result.stderr
    runs = {name: _run(engine, run_id) for name, run_id in ids.items()}
    assert {name: (run.status, run.params.get("kfp_state")) for name, run in runs.items()} == {
        "canceled": ("cancelled", "CANCELED"), "skipped": ("skipped", "SKIPPED"), "paused": ("running", "PAUSED"),
        "canceling": ("running", "CANCELING"), "unspecified": ("submitted", None)}  # fmt: skip
    assert runs["canceled"].finished_at is not None and runs["skipped"].finished_at is not None
    assert runs["paused"].finished_at is None
    unspecified = ids["unspecified"]
    assert [row for row in _rows(engine) if row[0] == unspecified] == [before[unspecified]]
    assert not _failed_audits(engine)  # a cancelled or skipped run is no training failure


def test_an_unknown_run_id_exits_2_and_writes_nothing(cli, engine: Engine, kfp_api: KfpApi) -> None:  # type: ignore[no-untyped-def]
    _submitted(engine, kfp_api, "run-a")
    kfp_api.states["run-a"] = [run_state("FAILED", error="boom", finished_at=_kfp_time(datetime.now(UTC)))]
    before = _rows(engine)

    result = cli("pipeline", "status", "--host", kfp_api.url, "run-a", "no-such-run")

    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert f"KFP at {kfp_api.url} has no run no-such-run (404: Failed to get run" in message
    assert "nothing was written" in message
    assert kfp_api.reads["run-a"] == 1  # read, and still not written: all reads come before any write
    assert _rows(engine) == before and not _failed_audits(engine)


def test_an_open_run_kfp_no_longer_has_is_reported_and_the_others_synced(cli, engine: Engine,  # type: ignore[no-untyped-def]
                                                                        kfp_api: KfpApi) -> None:
    deleted, kept = _submitted(engine, kfp_api, "deleted-in-kfp", "run-b")
    kfp_api.states["run-b"] = ["RUNNING"]
    before = [row for row in _rows(engine) if row[0] == deleted]

    result = cli("pipeline", "status", "--host", kfp_api.url)

    assert result.exit_code == 2
    assert "has no run deleted-in-kfp" in " ".join(result.stderr.split())
    assert [row for row in _rows(engine) if row[0] == deleted] == before
    assert _run(engine, kept).status == "running"


@pytest.mark.parametrize("server", ["unreachable", "refusing"])
def test_a_server_that_does_not_answer_or_refuses_exits_2_and_writes_nothing(cli, engine: Engine, kfp_api: KfpApi,  # type: ignore[no-untyped-def]
                                                                           server: str) -> None:
    host = f"http://127.0.0.1:{free_port()}" if server == "unreachable" else kfp_api.url
    kfp_api.refuse_reads = 503
    for kfp_id in ("run-x", "run-y"):
        kfp_run(engine, "lstm-training", ARGUMENTS, kfp_id=kfp_id, host=host)
    before = _rows(engine)

    result = cli("pipeline", "status", "--host", host)

    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    expected = "did not answer" if server == "unreachable" else "refused to give run run-x (HTTP 503: the API server"
    assert f"KFP at {host} {expected}" in message and "nothing was written" in message
    assert "port-forward" in message or "kubectl -n kubeflow logs" in message  # the fix
    assert _rows(engine) == before


@pytest.fixture
def hung_host() -> Iterator[str]:
    """A server on 127.0.0.1 that accepts connections and never answers."""
    server, accepted = socket.create_server(("127.0.0.1", 0)), []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                accepted.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()
        for conn in accepted:
            conn.close()


def test_a_hung_server_is_given_up_and_nothing_is_written(engine: Engine, hung_host: str) -> None:
    kfp_run(engine, "lstm-training", ARGUMENTS, kfp_id="run-h", host=hung_host)
    before = _rows(engine)
    with pytest.raises(KfpStatusError, match=f"KFP at {hung_host} did not answer within 1 s"):
        sync(engine, hung_host, deadline=1.0)  # kfp.Client itself would wait for ever
    assert _rows(engine) == before


def test_a_run_not_recorded_yet_is_added(cli, engine: Engine, kfp_api: KfpApi) -> None:  # type: ignore[no-untyped-def]
    finished = datetime.now(UTC).replace(microsecond=0)
    kfp_api.created_at = _kfp_time(finished - timedelta(minutes=30))
    kfp_api.states["from-the-ui"] = [run_state("SUCCEEDED", finished_at=_kfp_time(finished))]
    kfp_api.states["recurring"] = [run_state("RUNNING", pipeline_spec=None, display_name="nightly retrain")]

    result = cli("pipeline", "status", "--host", kfp_api.url, "from-the-ui", "recurring")

    assert result.exit_code == 0, result.output + result.stderr
    assert result.stdout.count("(added)") == 2
    rows = {row[3]["kfp_run_id"]: row for row in _rows(engine)}
    _, pipeline, status, params, _, _, started, ended = rows["from-the-ui"]
    assert (pipeline, status) == ("lstm-training", "succeeded")  # the name from its pipeline spec
    assert params["kfp_host"] == kfp_api.url and params["symbols"] == ["EURUSD"] and params["timeframe"] == "1h"
    assert utc(started) == finished - timedelta(minutes=30) and utc(ended) == finished
    assert rows["recurring"][1:3] == ("nightly retrain", "running")  # no spec in the answer: its display name
    # recorded now, so a sync without ids follows it
    kfp_api.states["recurring"] = [run_state("SUCCEEDED", finished_at=_kfp_time(datetime.now(UTC)))]
    kfp_api.reads["recurring"] = 0
    assert cli("pipeline", "status", "--host", kfp_api.url).exit_code == 0
    assert {row[3]["kfp_run_id"]: row[2] for row in _rows(engine)}["recurring"] == "succeeded"


def test_the_host_comes_from_kfp_host_and_is_required(cli, engine: Engine, kfp_api: KfpApi, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    missing = cli("pipeline", "status")
    assert missing.exit_code == 2 and "no KFP host: pass --host URL or set KFP_HOST" in " ".join(missing.stderr.split())
    assert cli("pipeline", "status", "--host", "ml-pipeline:8888").exit_code == 2
    [run_id] = _submitted(engine, kfp_api, "run-env")
    kfp_api.states["run-env"] = ["RUNNING"]
    monkeypatch.setenv("KFP_HOST", kfp_api.url)
    assert cli("pipeline", "status").exit_code == 0
    assert _run(engine, run_id).status == "running"


def test_monitor_check_syncs_kfp_runs_before_its_rules(cli, engine: Engine, kfp_api: KfpApi, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    [run_id] = _submitted(engine, kfp_api, "run-c")
    finished = _kfp_time(datetime.now(UTC))
    kfp_api.states["run-c"] = [run_state("FAILED", error="evaluate: OOMKilled", finished_at=finished)]
    monkeypatch.setenv("KFP_HOST", kfp_api.url)

    result = cli("monitor", "check", "--no-latency")

    assert result.exit_code == 1, result.output
    assert f"KFP runs synced from {kfp_api.url}: 1 ({run_id} failed)" in " ".join(result.stdout.split())
    assert "AicashTrainingFailed" in result.stdout and "firing" in result.stdout
    assert "OOMKilled" in result.stdout and "warning" not in result.stderr
    assert _run(engine, run_id).status == "failed"


def test_a_failed_sync_is_reported_and_the_check_goes_on(cli, engine: Engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    host = f"http://127.0.0.1:{free_port()}"
    kfp_run(engine, "lstm-training", ARGUMENTS, kfp_id="run-d", host=host)
    before = _rows(engine)
    monkeypatch.setenv("KFP_HOST", host)

    result = cli("monitor", "check", "--no-latency")

    assert result.exit_code == 0, result.output  # nothing fires: the rules were evaluated all the same
    assert "AicashTrainingFailed" in result.stdout
    assert f"warning: KFP runs not synced from {host}: KFP at {host} did not answer" in " ".join(result.stderr.split())
    assert _rows(engine) == before


def test_a_run_recorded_before_kfp_answered_is_never_sent_to_kfp(engine: Engine, kfp_api: KfpApi) -> None:
    """`pipelines.launch.submit` records a run (`submitting`, no KFP id) before it asks KFP; while it has no id (KFP
    has not answered, or refused and the row is `failed`) the sync asks KFP nothing about it."""
    from aicash.training.runs import finish_run, record_kfp_attempt

    pending = record_kfp_attempt(engine, "lstm-training", ARGUMENTS, host=kfp_api.url)
    refused = record_kfp_attempt(engine, "lstm-training", ARGUMENTS, host=kfp_api.url)
    finish_run(engine, refused, "failed", error="KFP refused")
    [submitted] = _submitted(engine, kfp_api, "run-7")
    kfp_api.states["run-7"] = ["RUNNING"]
    synced = sync(engine, kfp_api.url)
    assert [r.run_id for r in synced.runs] == [submitted] and kfp_api.reads == {"run-7": 1}
    assert [(_run(engine, i).status, _run(engine, i).params.get("kfp_run_id")) for i in (pending, refused)] == [
        ("submitting", None), ("failed", None)]
