"""The `training_runs` table: one row per pipeline run, whether it succeeds or fails.

A run made here is `running` until `finish_run` closes it. A run handed to a KFP cluster is recorded as
`submitted` (a recurring run as `scheduled`), with the KFP id and host in its params; `record_kfp_outcomes` then
writes what KFP reports of it (`aicash pipeline status`, read by `pipelines.status`): `running`, and at the end
`succeeded`, `failed`, `skipped` or `cancelled`, with KFP's own state and times in its params. A run that
`POST /train` does not start, having nothing new to train on, is recorded `skipped` at once (`record_skipped`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from aicash.db.engine import session_scope
from aicash.db.models import AuditLog, MLModel, TrainingRun

OPEN_KFP_STATUSES = ("submitted", "running")  # a KFP run whose outcome is not recorded yet
KFP_TIME_RESOLUTION = timedelta(seconds=1)  # KFP keeps its times in whole seconds


OPENING_STATUSES = ("submitting", "scheduling")  # recorded before KFP was asked: no KFP id yet, never synced


@dataclass(frozen=True)
class AuditEntry:
    """An audit entry written in the same transaction as the row it describes (`run_id` is added to `details`):
    if it cannot be written, the run is not recorded either, and the caller starts nothing."""

    actor: str
    action: str
    details: dict[str, Any] = field(default_factory=dict)


def start_run(engine: Engine, pipeline: str, params: dict[str, Any], status: str = "running",
              audit: AuditEntry | None = None) -> int:  # fmt: skip
    with session_scope(engine) as session:
        run = TrainingRun(pipeline=pipeline, status=status, params=params)
        return _add_run(session, run, audit)


def record_skipped(engine: Engine, pipeline: str, params: dict[str, Any], reason: str,
                   audit: AuditEntry | None = None) -> int:  # fmt: skip
    """A run not started because it had nothing new to train on: `skipped`, closed at once, the reason in its
    error (where KFP's skipped runs keep theirs); with its audit entry in the same transaction."""
    now = datetime.now(UTC)
    with session_scope(engine) as session:
        run = TrainingRun(pipeline=pipeline, status="skipped", params=params, error=reason, started_at=now,
                          finished_at=now)
        return _add_run(session, run, audit)


def _add_run(session: Session, run: TrainingRun, audit: AuditEntry | None) -> int:
    session.add(run)
    session.flush()
    if audit is not None:
        session.add(AuditLog(actor=audit.actor, action=audit.action, target=run.pipeline[:128],
                             details={"run_id": run.id, **audit.details}))
    return int(run.id)


def record_kfp_attempt(engine: Engine, pipeline: str, params: dict[str, Any], *, host: str,
                       cron: str | None = None, audit: AuditEntry | None = None) -> int:  # fmt: skip
    """Before asking KFP at `host`: a row `submitting` (`scheduling` with a `cron`), with `kfp_host` (and `cron`) in
    its params but no KFP id yet, so a run KFP accepts is never untracked. `kfp_accepted` or `finish_run(...,
    "failed")` completes it."""
    extra = {"kfp_host": host} | ({"cron": cron} if cron is not None else {})
    status = "submitting" if cron is None else "scheduling"
    return start_run(engine, pipeline, params | extra, status=status, audit=audit)


def kfp_accepted(engine: Engine, run_id: int, kfp_id: str) -> str:
    """KFP accepted the run recorded by `record_kfp_attempt`: store its id; `submitted` (or `scheduled`), the status
    `pipelines.status` syncs from."""
    with session_scope(engine) as session:
        run = session.get(TrainingRun, run_id, with_for_update=True)
        assert run is not None
        scheduled = run.status == "scheduling"
        key = "kfp_recurring_run_id" if scheduled else "kfp_run_id"
        run.params = {**run.params, key: kfp_id}  # a new dict: the JSON column does not track mutations
        run.status = "scheduled" if scheduled else "submitted"
        return run.status


def finish_run(
    engine: Engine, run_id: int, status: str, error: str | None = None, finished_at: datetime | None = None
) -> str | None:
    """Close the run (at `finished_at`, default now); a succeeded run is linked to the model version registered
    while it ran. A failed run leaves an audit entry (the training-failure alert reads the runs table). A run
    already closed stays as it is (e.g. recorded failed when the service shut down, before its thread came back)."""
    with session_scope(engine) as session:
        run = session.get(TrainingRun, run_id, with_for_update=True)
        assert run is not None
        return _close(session, run, status, error, finished_at)


def _close(session: Session, run: TrainingRun, status: str, error: str | None, finished_at: datetime | None
           ) -> str | None:  # fmt: skip
    if run.finished_at is not None:
        return run.model_version
    run.status, run.error, run.finished_at = status, error, finished_at or datetime.now(UTC)
    if status == "succeeded":
        registered = select(MLModel).where(MLModel.created_at >= run.started_at)
        if finished_at is not None:  # a time from elsewhere (KFP's): nothing registered after the run ended
            registered = registered.where(MLModel.created_at < finished_at + KFP_TIME_RESOLUTION)
        newest = session.scalars(registered.order_by(MLModel.created_at.desc())).first()
        run.model_version = newest.version if newest else None
    elif status == "failed":
        session.add(AuditLog(actor="pipeline", action="training.failed", target=run.pipeline,
                             details={"run_id": run.id, "error": (error or "")[:2000]}))
    return run.model_version


# -- runs on a KFP cluster ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KfpOutcome:
    """What KFP reports of one of its runs, in this table's words: `status` is `running`, `succeeded`, `failed`,
    `skipped` or `cancelled`, or None when KFP's state says nothing (the row is then left as it is); `state` is
    KFP's own word for it (`FAILED`, `CANCELED`, ...). Times are UTC; None where KFP has none yet."""

    kfp_run_id: str
    state: str
    status: str | None
    error: str | None = None
    created_at: datetime | None = None
    scheduled_at: datetime | None = None
    finished_at: datetime | None = None
    pipeline: str | None = None  # the pipeline's name, for a run not recorded yet
    arguments: dict[str, Any] = field(default_factory=dict)  # its parameters, for a run not recorded yet

    def params(self) -> dict[str, Any]:
        """What the row's params keep of it: KFP's state and times."""
        times = {"kfp_created_at": self.created_at, "kfp_scheduled_at": self.scheduled_at,
                 "kfp_finished_at": self.finished_at}
        return {"kfp_state": self.state} | {k: t.isoformat() for k, t in times.items() if t is not None}


@dataclass(frozen=True)
class RecordedOutcome:
    """A KFP run's row after the update: `added` when it was recorded just now, `kept` when it was left as it was
    (closed already, or KFP's state said nothing)."""

    run_id: int
    kfp_run_id: str
    state: str
    status: str
    error: str | None
    model_version: str | None
    added: bool = False
    kept: bool = False


def same_host(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.rstrip("/") == b.rstrip("/")


def open_kfp_runs(engine: Engine, host: str) -> list[tuple[int, str]]:
    """(training run id, KFP run id) of every run handed to KFP at `host` whose outcome is not recorded yet."""
    with engine.connect() as conn:
        rows = conn.execute(select(TrainingRun.id, TrainingRun.params)
                            .where(TrainingRun.status.in_(OPEN_KFP_STATUSES)).order_by(TrainingRun.id)).all()
    return [(int(run_id), str(params["kfp_run_id"])) for run_id, params in rows
            if params.get("kfp_run_id") and same_host(params.get("kfp_host"), host)]


def record_kfp_outcomes(engine: Engine, host: str, outcomes: Iterable[KfpOutcome]) -> list[RecordedOutcome]:
    """Write what KFP at `host` reports into `training_runs`, all in one transaction. An open row (`submitted`,
    `running`) takes the new status, KFP's state and times in its params, and at the end is closed by the same
    code as a local run: `finished_at` KFP's, the error, the version registered while it ran, the
    `training.failed` audit entry. A closed row is never reopened or overwritten. A run not recorded yet (started
    from KFP's UI, or by a recurring run) is added, started at KFP's scheduled (else created) time."""
    with session_scope(engine) as session:
        return [_record(session, host, outcome) for outcome in outcomes]


def _record(session: Session, host: str, outcome: KfpOutcome) -> RecordedOutcome:
    run = session.scalars(select(TrainingRun).where(TrainingRun.params["kfp_run_id"].as_string() == outcome.kfp_run_id)
                          .order_by(TrainingRun.id).limit(1).with_for_update()).first()
    added = run is None
    if run is None:
        run = TrainingRun(pipeline=(outcome.pipeline or "unknown")[:64], status="submitted",
                          params={**outcome.arguments, "kfp_run_id": outcome.kfp_run_id, "kfp_host": host},
                          started_at=outcome.scheduled_at or outcome.created_at or datetime.now(UTC))
        session.add(run)
    closed = run.finished_at is not None or run.status not in OPEN_KFP_STATUSES
    kept = not added and (closed or outcome.status is None)
    if not kept:
        run.params = {**run.params, **outcome.params()}  # a new dict: the JSON column does not track mutations
        if outcome.status == "running":
            run.status = "running"
        elif outcome.status is not None:
            _close(session, run, outcome.status, outcome.error, outcome.finished_at or datetime.now(UTC))
    session.flush()
    return RecordedOutcome(int(run.id), outcome.kfp_run_id, outcome.state, run.status, run.error, run.model_version,
                           added=added, kept=kept)
