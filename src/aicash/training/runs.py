"""The `training_runs` table: one row per pipeline run, whether it succeeds or fails."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from aicash.db.engine import session_scope
from aicash.db.models import AuditLog, MLModel, TrainingRun


def start_run(engine: Engine, pipeline: str, params: dict[str, Any]) -> int:
    with session_scope(engine) as session:
        run = TrainingRun(pipeline=pipeline, status="running", params=params)
        session.add(run)
        session.flush()
        return int(run.id)


def finish_run(engine: Engine, run_id: int, status: str, error: str | None = None) -> str | None:
    """Close the run; a succeeded run is linked to the model version registered while it ran. A failed run
    leaves an audit entry (the training-failure alert reads the runs table)."""
    with session_scope(engine) as session:
        run = session.get(TrainingRun, run_id)
        assert run is not None
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
