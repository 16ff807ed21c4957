"""The `training_runs` table: one row per pipeline run, whether it succeeds or fails.

A run made here is `running` until `finish_run` closes it. A run handed to a KFP cluster is recorded once, as
`submitted` (a recurring run as `scheduled`), with the KFP id and host in its params: the cluster runs it, and its
outcome is in KFP."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from aicash.db.engine import session_scope
from aicash.db.models import AuditLog, MLModel, TrainingRun


def start_run(engine: Engine, pipeline: str, params: dict[str, Any], status: str = "running") -> int:
    with session_scope(engine) as session:
        run = TrainingRun(pipeline=pipeline, status=status, params=params)
        session.add(run)
        session.flush()
        return int(run.id)


def record_submission(engine: Engine, pipeline: str, params: dict[str, Any], *, kfp_run_id: str, host: str) -> int:
    """A run created on the KFP server at `host`: status `submitted`, params plus `kfp_run_id` and `kfp_host`."""
    return start_run(engine, pipeline, params | {"kfp_run_id": kfp_run_id, "kfp_host": host}, status="submitted")


def record_schedule(
    engine: Engine, pipeline: str, params: dict[str, Any], *, recurring_run_id: str, host: str, cron: str
) -> int:
    """A recurring run created on the KFP server at `host`: status `scheduled`, params plus
    `kfp_recurring_run_id`, `kfp_host` and `cron` (each run it starts is KFP's to record)."""
    return start_run(engine, pipeline, params | {"kfp_recurring_run_id": recurring_run_id, "kfp_host": host,
                                                 "cron": cron}, status="scheduled")


def finish_run(engine: Engine, run_id: int, status: str, error: str | None = None) -> str | None:
    """Close the run; a succeeded run is linked to the model version registered while it ran. A failed run
    leaves an audit entry (the training-failure alert reads the runs table). A run already closed stays as it is
    (e.g. recorded failed when the service shut down, before its thread came back)."""
    with session_scope(engine) as session:
        run = session.get(TrainingRun, run_id, with_for_update=True)
        assert run is not None
        if run.finished_at is not None:
            return run.model_version
        run.status, run.error, run.finished_at = status, error, datetime.now(UTC)
        if status == "succeeded":
            newest = session.scalars(
                select(MLModel).where(MLModel.created_at >= run.started_at).order_by(MLModel.created_at.desc())
            ).first()
            run.model_version = newest.version if newest else None
        else:
            session.add(AuditLog(actor="pipeline", action="training.failed", target=run.pipeline,
                                 details={"run_id": run_id, "error": (error or "")[:2000]}))
        return run.model_version
