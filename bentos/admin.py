"""Admin operations of the inference service (the original trainer service's API): start a training pipeline,
read the training runs, promote a version, roll back. Framework-free: `service.py` maps HTTP onto `AdminOps`.

Who may call them is decided by `bentos.security` (admin keys only); who did what is written to `audit_log`
with the key's name as the actor (`api:<name>`), in the same transaction as the change (a training run's row, a
promotion, a rollback): an audit entry that cannot be written fails the operation with 503 and changes nothing.
While the database is unreachable every operation answers 503 with Retry-After.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError

from aicash.db.engine import session_scope
from aicash.db.models import TrainingRun
from aicash.registry import (
    PREVIOUS_VERSION,
    ModelRecord,
    NothingToRollBackError,
    RegistryError,
    UnknownVersionError,
    promote,
    rollback,
)
from aicash.registry.artifacts import NAME_PATTERN
from aicash.serving.outages import is_outage
from aicash.serving.schemas import Symbol, Timeframe
from aicash.settings import Settings
from aicash.training.retrain import nothing_new
from aicash.training.runs import AuditEntry, finish_run, record_skipped, start_run
from pipelines.launch import (
    ChildProcess,
    Executor,
    KfpUnavailableError,
    LaunchError,
    RunFailedError,
    run_here,
    submit,
)

log = logging.getLogger("aicash.service.admin")

STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=True)
VERSION_PATTERN = NAME_PATTERN.pattern
Reason = Annotated[str, Field(min_length=1, max_length=500)]


class TrainRequest(BaseModel):
    """Which pipeline to run on which series; `config` is a `TrainingConfig` (lstm-training only). No body at all
    means these defaults, as the guide's `curl -X POST .../train` sends."""

    model_config = ConfigDict(**STRICT, json_schema_extra={"example": {"symbols": ["EURUSD"], "timeframe": "1h"}})

    pipeline: Literal["lstm-training", "signal-weights"] = "lstm-training"
    symbols: list[Symbol] = Field(default_factory=lambda: ["EURUSD"], min_length=1, max_length=20)
    timeframe: Timeframe = "1h"
    config: dict[str, Any] | None = Field(default=None, description="TrainingConfig fields, e.g. {\"max_epochs\": 5}.")
    force_retrain: bool = Field(default=False, description=(
        "Start the run even when no new bar has arrived since the production model's training data ended "
        "(lstm-training; without it such a run is skipped: 200 with the reason, recorded as skipped)."))

    @field_validator("config")
    @classmethod
    def _valid_config(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            from aicash.training.config import TrainingConfig

            TrainingConfig.model_validate(value)  # its ValidationError names the bad field
        return value

    def arguments(self) -> dict[str, Any]:
        """The pipeline's arguments, as `aicash pipeline run` passes them."""
        if self.config is not None and self.pipeline != "lstm-training":
            raise AdminError(400, "config: applies to the lstm-training pipeline only; leave it out")
        args: dict[str, Any] = {"symbols": list(self.symbols), "timeframe": self.timeframe}
        if self.config is not None:
            args["config_json"] = json.dumps(self.config)
        return args


class PromoteRequest(BaseModel):
    """Traffic share for the version: 100 = production, 1-99 = canary, 0 = end its canary."""

    model_config = ConfigDict(**STRICT, json_schema_extra={"example": {"traffic_percentage": 10}})

    traffic_percentage: float = Field(ge=0, le=100)
    force: bool = False
    reason: Reason | None = None


class RollbackRequest(BaseModel):
    model_config = STRICT
    reason: Reason | None = None


class AdminError(Exception):
    """An admin request that cannot be done: the HTTP status and a message naming the problem and the fix."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def record_view(record: ModelRecord) -> dict[str, Any]:
    return {"name": record.name, "version": record.version, "status": record.status,
            "traffic_percentage": record.traffic_percentage, "gate_passed": record.gate_passed}


class AdminOps:
    """Training runs, promotion and rollback on behalf of an admin key."""

    def __init__(
        self, settings: Settings, engine: Engine, *, run_local: Executor | None = None,
        after_change: Callable[[], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.local = ChildProcess(settings)
        self.run_local = run_local or self.local
        self.after_change = after_change  # e.g. the runtime's reload, so a promotion serves at once
        self._lock = threading.Lock()
        self._running: int | None = None
        self._thread: threading.Thread | None = None
        self.shutdown_wait_seconds = 10.0

    # -- training ------------------------------------------------------------------------------------------
    def train(self, request: TrainRequest, actor: str) -> dict[str, Any]:
        """Start the pipeline: on the KFP cluster when KFP_HOST is set, else here in a background thread.
        Returns at once with the training run's id. Without `force_retrain`, an lstm-training run with nothing
        new to train on is not started: it is recorded `skipped`, and the answer's `reason` says why."""
        arguments = request.arguments()
        if (skipped := self._skip(request, arguments, actor)) is not None:
            return skipped
        if self.settings.kfp_host:
            return self._submit(request.pipeline, arguments, actor, request.force_retrain)
        with self._lock, _database_errors():
            if self._running is not None:
                raise AdminError(409, f"training run {self._running} is still running on this replica: wait for it "
                                      "(GET /training-status) before starting another")
            audit = AuditEntry(actor, "training.submit",
                               {"mode": "local", "force_retrain": request.force_retrain, **arguments})
            run_id = start_run(self.engine, request.pipeline, arguments, audit=audit)  # one transaction
            self._running = run_id
        self._thread = threading.Thread(target=self._run, args=(run_id, request.pipeline, arguments),
                                        name=f"training-run-{run_id}", daemon=True)
        self._thread.start()
        return {"run_id": run_id, "status": "running", "mode": "local", "pipeline": request.pipeline,
                "arguments": arguments}

    def _skip(self, request: TrainRequest, arguments: dict[str, Any], actor: str) -> dict[str, Any] | None:
        """The answer for a run skipped because no new bar arrived since the production model's training data
        ended (recorded, with a `training.skip` audit entry); None when the run is to start."""
        if request.force_retrain or request.pipeline != "lstm-training":
            return None
        with _database_errors():
            stale = nothing_new(self.engine, request.symbols, request.timeframe)
            if stale is None:
                return None
            audit = AuditEntry(actor, "training.skip", {"reason": stale.reason, **arguments})
            run_id = record_skipped(self.engine, request.pipeline, arguments, stale.reason, audit=audit)
        log.info("training run %s skipped: %s", run_id, stale.reason)
        return {"run_id": run_id, "status": "skipped", "reason": stale.reason, "pipeline": request.pipeline,
                "arguments": arguments, "production_version": stale.version,
                "training_data_end": stale.data_end.isoformat(),
                "latest_bar": None if stale.latest_bar is None else stale.latest_bar.isoformat()}

    def _submit(self, pipeline: str, arguments: dict[str, Any], actor: str, force: bool = False) -> dict[str, Any]:
        host = str(self.settings.kfp_host)
        audit = AuditEntry(actor, "training.submit",
                           {"mode": "kfp", "kfp_host": host, "force_retrain": force, **arguments})
        try:
            with _database_errors():  # recorded (with its audit entry) before KFP is asked
                run = submit(self.engine, self.settings, pipeline, arguments, host=host, audit=audit)
        except ImportError as exc:
            raise AdminError(503, f"this image cannot submit pipelines ({exc}): install kfp beside the aicash wheel "
                                  "(its pipelines extra), or submit with `aicash pipeline submit`") from None
        except KfpUnavailableError as exc:
            log.warning("KFP submit to %s failed: %s", host, exc.__cause__)
            raise AdminError(502, f"KFP at KFP_HOST={host} refused or did not answer the submission: "
                                  f"{type(exc.__cause__).__name__}: {str(exc.__cause__)[:200]} (training run "
                                  f"{exc.run_id} recorded as failed)") from None
        return {"run_id": run.run_id, "status": "submitted", "mode": "kfp", "kfp_run_id": run.kfp_id,
                "pipeline": pipeline, "arguments": arguments}

    def _run(self, run_id: int, pipeline: str, arguments: dict[str, Any]) -> None:
        try:
            done = run_here(self.engine, self.settings, pipeline, arguments, execute=self.run_local, run_id=run_id)
        except RunFailedError as exc:
            log.warning("training run %s (%s) failed: %s", run_id, pipeline, exc.cause)
        else:
            log.info("training run %s (%s) succeeded; registered %s", run_id, pipeline, done.model_version)
        finally:
            with self._lock:
                self._running = None

    def close(self) -> None:
        """On shutdown: stop a local run still going; it is recorded as failed (exit code -15)."""
        self.local.stop()
        if self._thread is not None:
            self._thread.join(self.shutdown_wait_seconds)
        with self._lock:
            running, self._running = self._running, None
        if running is not None:  # the run's thread did not finish in time
            finish_run(self.engine, running, "failed", error="interrupted: the service shut down while it ran")

    def status(self, limit: int) -> dict[str, Any]:
        with _database_errors(), session_scope(self.engine) as session:
            runs = session.scalars(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit)).all()
            rows = [{"run_id": r.id, "pipeline": r.pipeline, "status": r.status, "params": r.params,
                     "error": r.error, "model_version": r.model_version,
                     "started_at": r.started_at.isoformat() if r.started_at else None,
                     "finished_at": r.finished_at.isoformat() if r.finished_at else None} for r in runs]
        return {"runs": rows, "running_here": self._running}

    # -- registry ------------------------------------------------------------------------------------------
    def promote(self, version: str, request: PromoteRequest, actor: str) -> dict[str, Any]:
        """Give `version` its traffic share; `previous-version` rolls back to the version that was production
        before the current one."""
        if version == PREVIOUS_VERSION:
            return self._promote_previous(request, actor)
        with _registry_errors(), _database_errors():  # the promotion and its audit entry: one transaction
            record = promote(self.engine, version, request.traffic_percentage, force=request.force,
                             reason=request.reason, actor=actor)
        return {"promoted": record_view(record), "serving": self._reload()}

    def _promote_previous(self, request: PromoteRequest, actor: str) -> dict[str, Any]:
        """The guide's model rollback: exactly `rollback` (same registry change, same `model.rollback` audit
        entry); 409 saying why when there is no previous production version."""
        if request.traffic_percentage != 100:
            raise AdminError(400, f"traffic_percentage: {PREVIOUS_VERSION} is a rollback and takes 100 (the previous "
                                  "production version back to all the traffic); for a canary share, promote that "
                                  "version by its name (GET /models lists them)")
        try:
            answer = self.rollback(RollbackRequest(reason=request.reason), actor)
        except AdminError as exc:
            if exc.status == 409:
                raise AdminError(409, f"{PREVIOUS_VERSION}: no previous production version to promote "
                                      f"({exc.message})") from None
            raise
        return {"promoted": answer["production"], **answer}

    def rollback(self, request: RollbackRequest, actor: str) -> dict[str, Any]:
        with _registry_errors(), _database_errors():  # the rollback and its audit entry: one transaction
            record = rollback(self.engine, actor, reason=request.reason)
        return {"production": record_view(record), "serving": self._reload()}

    def _reload(self) -> Any:
        """The split this replica serves after the change (others pick it up within REGISTRY_RELOAD_SECONDS)."""
        return None if self.after_change is None else self.after_change()


RETRY_AFTER = {"Retry-After": "5"}


@contextmanager
def _database_errors() -> Iterator[None]:
    """503 with Retry-After, never a bare 500, when the database is unreachable or refuses the audit entry (then the
    transaction that carried the change is rolled back: nothing changed). Any other error is a bug and surfaces."""
    try:
        yield
    except (AdminError, LaunchError):  # answered by the caller (KFP's refusals are not the database's)
        raise
    except Exception as exc:
        if is_outage(exc):
            raise AdminError(503, f"the database is unreachable ({type(exc).__name__}): nothing was changed; retry "
                                  "shortly", RETRY_AFTER) from None
        if isinstance(exc, DBAPIError) and "audit_log" in str(exc.statement or "").lower():
            log.error("audit entry refused, operation not done: %s", str(exc.orig)[:300])
            raise AdminError(503, f"the audit entry could not be written ({type(exc.orig).__name__}), so nothing was "
                                  "done; retry shortly", RETRY_AFTER) from None
        raise


@contextmanager
def _registry_errors() -> Iterator[None]:
    """Registry refusals as HTTP errors: unknown version 404, nothing to roll back or a refused promotion 409."""
    try:
        yield
    except UnknownVersionError as exc:
        raise AdminError(404, str(exc)) from None
    except (NothingToRollBackError, RegistryError) as exc:
        raise AdminError(409, str(exc)) from None
