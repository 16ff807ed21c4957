"""The model registry over `ml_models` and `audit_log`: register, promote (canary or production), roll back.

Statuses: `candidate` (registered without a gate decision), `approved` and `rejected` (the gate's decision),
`production` (serves the traffic the canary does not take) and `archived` (was production, replaced).
A canary is an approved (or forced) version with 0 < traffic < 100 beside the production version; there is at
most one. Only versions that passed the gate are promoted without `force`; a forced promotion needs a reason,
which the audit log keeps. A rejected version never becomes `approved`. Every change writes an audit entry,
and rollback replays those entries to find the version that was production before the current one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aicash.db.engine import session_scope
from aicash.db.models import AuditLog, MLModel
from aicash.json_values import json_safe
from aicash.model_input import MODEL_NAME
from aicash.registry.artifacts import ArtifactStore, check_name, verify_local

PROMOTE, ROLLBACK, REGISTER = "model.promote", "model.rollback", "model.register"
# The version alias of the guide's model rollback (`POST /models/previous-version/promote`): the version that was
# production before the current one. No version may be registered under that name.
PREVIOUS_VERSION = "previous-version"


class RegistryError(ValueError):
    """A registry request that cannot be done; the message says why and what to do instead."""


class UnknownVersionError(RegistryError, LookupError):
    """No model with that name and version is registered."""


class PromotionRefusedError(RegistryError):
    """The version may not be promoted that way (gate failed without force, bad traffic, already serving)."""


class NothingToRollBackError(RegistryError):
    """There is no earlier production version to restore."""


@dataclass(frozen=True)
class ModelRecord:
    """A registered model version, detached from the database session."""

    name: str
    version: str
    status: str
    traffic_percentage: float
    metrics: dict[str, Any]
    gate_passed: bool | None
    reasons: list[str]
    artifact_uri: str | None
    artifact_sha256: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def is_canary(self) -> bool:
        return self.status != "production" and self.traffic_percentage > 0

    @property
    def role(self) -> str:
        """The status, with `canary` added when the version takes a share of the traffic."""
        return f"{self.status} (canary)" if self.is_canary else self.status

    @classmethod
    def of(cls, row: MLModel) -> ModelRecord:
        reasons = row.reasons or {}
        return cls(
            name=row.name, version=row.version, status=row.status, traffic_percentage=float(row.traffic_percentage),
            metrics=dict(row.metrics or {}), gate_passed=reasons.get("gate_passed"),
            reasons=list(reasons.get("gate", [])), artifact_uri=row.artifact_uri, artifact_sha256=row.artifact_sha256,
            created_at=row.created_at, updated_at=row.updated_at,
        )


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    target: str | None
    details: dict[str, Any]


def _json_safe(value: Any) -> Any:
    return json_safe(value, lambda bad: RegistryError(
        f"metric value {bad!r} of type {type(bad).__name__} is not JSON: use numbers or text"))


def _target(name: str, version: str) -> str:
    return f"{name}:{version}"


def _rows(session: Session, name: str) -> list[MLModel]:
    """Every version of `name`, locked for the rest of the transaction (PostgreSQL) so promotions serialize."""
    return list(session.scalars(select(MLModel).where(MLModel.name == name).order_by(MLModel.id).with_for_update()))


def _find(rows: Sequence[MLModel], name: str, version: str) -> MLModel:
    for row in rows:
        if row.version == version:
            return row
    raise UnknownVersionError(f"no version {version!r} of {name} is registered: see `aicash models list`")


# -- registration ---------------------------------------------------------------------------------------------
def register_model(
    engine: Engine,
    store: ArtifactStore,
    *,
    name: str = MODEL_NAME,
    version: str,
    artifacts_dir: Path,
    metrics: dict[str, Any],
    approved: bool | None,
    reasons: list[str],
    actor: str,
) -> ModelRecord:
    """Upload the artifacts, then record the version as approved, rejected (with reasons) or candidate (None)."""
    check_name("model name", name)
    check_name("version", version)
    if version == PREVIOUS_VERSION:
        raise RegistryError(f"{PREVIOUS_VERSION!r} is the alias of the previous production version: pick another "
                            "version name")
    if approved is False and not reasons:
        raise RegistryError("a rejected model needs at least one reason (which gate check failed)")
    clean_metrics = _json_safe(metrics)
    with session_scope(engine) as session:
        if session.scalar(select(MLModel.id).where(MLModel.name == name, MLModel.version == version)) is not None:
            raise RegistryError(f"{name} {version} is already registered: versions are immutable, pick a new one")
    stored = store.upload(name, version, artifacts_dir)
    status = {True: "approved", False: "rejected", None: "candidate"}[approved]
    try:
        with session_scope(engine) as session:
            row = MLModel(
                name=name, version=version, status=status, traffic_percentage=0.0, metrics=clean_metrics,
                reasons={"gate_passed": approved, "gate": [str(r) for r in reasons]},
                artifact_uri=stored.uri, artifact_sha256=stored.sha256,
            )
            session.add(row)
            session.add(AuditLog(actor=actor, action=REGISTER, target=_target(name, version), details={
                "name": name, "version": version, "status": status, "reasons": list(map(str, reasons)),
                "artifact_uri": stored.uri, "artifact_sha256": stored.sha256,
            }))
            session.flush()
            return ModelRecord.of(row)
    except IntegrityError:
        store.delete(name, version)
        raise RegistryError(f"{name} {version} is already registered: versions are immutable, pick a new one") from None
    except BaseException:
        store.delete(name, version)
        raise


# -- promotion ------------------------------------------------------------------------------------------------
def _check_promotion(row: MLModel, traffic: float, force: bool, reason: str | None) -> None:
    if not (0.0 <= traffic <= 100.0) or math.isnan(traffic):
        raise PromotionRefusedError(f"traffic percentage {traffic} is outside 0..100: use 1-99 for a canary, 100 for "
                                    "production, 0 to end a canary")
    gate_passed = (row.reasons or {}).get("gate_passed")
    if traffic > 0 and gate_passed is not True and not (force and reason and reason.strip()):
        what = "was rejected by the gate" if gate_passed is False else "has no gate decision (candidate)"
        raise PromotionRefusedError(
            f"{row.version} {what}: promoting it needs force=True and a reason, which the audit log keeps"
        )
    if row.status == "production":
        raise PromotionRefusedError(
            f"{row.version} is already production: promote another version to replace it, or roll back"
        )


def promote(
    engine: Engine,
    version: str,
    traffic_percentage: float,
    *,
    force: bool = False,
    reason: str | None = None,
    actor: str,
    name: str = MODEL_NAME,
) -> ModelRecord:
    """Give `version` a traffic share: 100 makes it production (the old one is archived), 1-99 the canary
    (replacing any other canary), 0 ends its canary."""
    traffic = float(traffic_percentage)
    with session_scope(engine) as session:
        rows = _rows(session, name)
        row = _find(rows, name, version)
        _check_promotion(row, traffic, force, reason)
        production = next((r for r in rows if r.status == "production"), None)
        canary = next((r for r in rows if r.status != "production" and r.traffic_percentage > 0), None)
        details: dict[str, Any] = {
            "name": name, "version": version, "from_status": row.status, "from_traffic": row.traffic_percentage,
            "to_traffic": traffic, "forced": bool(force and (row.reasons or {}).get("gate_passed") is not True),
            "reason": reason,
        }
        if traffic == 100.0:
            if production is not None:
                production.status, production.traffic_percentage = "archived", 0.0
            row.status, row.traffic_percentage = "production", 100.0
            details |= {"new_production": version, "archived": production.version if production else None}
        elif traffic > 0:
            if production is None:
                raise PromotionRefusedError(
                    f"there is no production version of {name} to split traffic with: promote {version} with "
                    "traffic 100 first"
                )
            if canary is not None and canary is not row:
                canary.traffic_percentage = 0.0
                details["replaced_canary"] = canary.version
            row.traffic_percentage = traffic
        else:
            if row.traffic_percentage == 0:
                raise PromotionRefusedError(f"{version} takes no traffic already: nothing to end")
            row.traffic_percentage = 0.0
        details["to_status"] = row.status
        session.add(AuditLog(actor=actor, action=PROMOTE, target=_target(name, version), details=details))
        session.flush()
        return ModelRecord.of(row)


def _production_stack(session: Session, name: str) -> list[str]:
    """The versions that were production, oldest first, replayed from the audit log (rollbacks pop)."""
    entries = session.scalars(
        select(AuditLog).where(AuditLog.action.in_([PROMOTE, ROLLBACK])).order_by(AuditLog.id)
    )
    stack: list[str] = []
    for entry in entries:
        details = entry.details or {}
        if details.get("name") != name or not details.get("new_production"):
            continue
        if entry.action == ROLLBACK:
            stack = stack[:-1]
            if not stack or stack[-1] != details["new_production"]:
                stack.append(details["new_production"])
        elif not stack or stack[-1] != details["new_production"]:
            stack.append(details["new_production"])
    return stack


def rollback(engine: Engine, actor: str, *, name: str = MODEL_NAME, reason: str | None = None) -> ModelRecord:
    """Restore the version that was production before the current one (100% traffic); archive the current one."""
    with session_scope(engine) as session:
        rows = _rows(session, name)
        current = next((r for r in rows if r.status == "production"), None)
        if current is None:
            raise NothingToRollBackError(f"{name} has no production version: nothing to roll back")
        stack = _production_stack(session, name)
        if not stack or stack[-1] != current.version:
            raise NothingToRollBackError(
                f"the audit log does not record how {current.version} became production: promote the version you "
                "want with traffic 100 instead"
            )
        if len(stack) < 2:
            raise NothingToRollBackError(
                f"{current.version} is the first production version of {name}: there is no earlier one to restore"
            )
        target = _find(rows, name, stack[-2])
        current.status, current.traffic_percentage = "archived", 0.0
        target.status, target.traffic_percentage = "production", 100.0
        session.add(AuditLog(actor=actor, action=ROLLBACK, target=_target(name, target.version), details={
            "name": name, "new_production": target.version, "demoted": current.version, "reason": reason,
        }))
        session.flush()
        return ModelRecord.of(target)


# -- reading --------------------------------------------------------------------------------------------------
def list_models(engine: Engine, name: str | None = MODEL_NAME, limit: int | None = None) -> list[ModelRecord]:
    """Every registered version (of `name`, or of all names when None), newest first; the first `limit`."""
    query = select(MLModel).order_by(MLModel.name, MLModel.created_at.desc(), MLModel.id.desc())
    if name is not None:
        query = query.where(MLModel.name == name)
    if limit is not None:
        query = query.limit(limit)
    with session_scope(engine) as session:
        return [ModelRecord.of(r) for r in session.scalars(query)]


def get_model(engine: Engine, version: str, name: str = MODEL_NAME) -> ModelRecord:
    with session_scope(engine) as session:
        row = session.scalar(select(MLModel).where(MLModel.name == name, MLModel.version == version))
        if row is None:
            raise UnknownVersionError(f"no version {version!r} of {name} is registered: see `aicash models list`")
        return ModelRecord.of(row)


def current_production(engine: Engine, name: str = MODEL_NAME) -> ModelRecord | None:
    with session_scope(engine) as session:
        row = session.scalar(select(MLModel).where(MLModel.name == name, MLModel.status == "production"))
        return None if row is None else ModelRecord.of(row)


def traffic_split(engine: Engine, name: str = MODEL_NAME) -> list[tuple[str, float]]:
    """[(version, percent)], canary first and production last with the remainder; [] with no production."""
    with session_scope(engine) as session:
        rows = session.scalars(select(MLModel).where(MLModel.name == name, MLModel.traffic_percentage > 0)).all()
        production = next((r for r in rows if r.status == "production"), None)
        if production is None:
            return []
        canaries = [(r.version, float(r.traffic_percentage)) for r in rows if r is not production]
        return [*canaries, (production.version, 100.0 - sum(p for _, p in canaries))]


def model_history(engine: Engine, version: str, name: str = MODEL_NAME) -> list[AuditEntry]:
    """Audit entries about one version, oldest first (including rollbacks that demoted it)."""
    with session_scope(engine) as session:
        entries = session.scalars(
            select(AuditLog).where(AuditLog.action.like("model.%")).order_by(AuditLog.id)
        ).all()
        out = []
        for e in entries:
            d = e.details or {}
            if d.get("name") == name and version in {d.get("version"), d.get("new_production"), d.get("demoted"),
                                                      d.get("archived"), d.get("replaced_canary")}:
                out.append(AuditEntry(e.at, e.actor, e.action, e.target, dict(d)))
        return out


def load_artifacts(
    engine: Engine, store: ArtifactStore, version: str, dest: Path, name: str = MODEL_NAME, *, reuse: bool = True
) -> Path:
    """The version's artifacts in `dest`, verified against the registered SHA-256; returns `dest`.

    With `reuse`, a `dest` that already holds exactly those artifacts (checked file by file) is not downloaded
    again, so a service reloading the registry every few seconds only fetches new versions.
    """
    record = get_model(engine, version, name)
    if not record.artifact_sha256:
        raise RegistryError(f"{name} {version} has no registered artifact digest: re-register it")
    if reuse and verify_local(dest, name, version, record.artifact_sha256):
        return dest
    return store.download(name, version, dest, expected_sha256=record.artifact_sha256)


def describe(record: ModelRecord) -> str:
    """One line for logs: version, role, traffic and metrics."""
    return f"{record.name} {record.version} {record.role} {record.traffic_percentage:g}% {json.dumps(record.metrics)}"
