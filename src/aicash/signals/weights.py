"""Versions of the rule signal's component weights in `signal_weights`: read the current ones, save a new one.

A new version is written only when its out-of-sample figure beats the weights in force, measured on the same
out-of-sample data by the same optimization run (`WeightsResult.improves`); `force=True` overrides that and
the audit entry says so. The run also records which version it compared against: if another version was saved
in between, the comparison is stale and saving is refused. This module needs only SQLAlchemy, so the inference
service can read the weights without the optimizers' dependencies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from aicash.db.engine import session_scope
from aicash.db.models import AuditLog, SignalWeights
from aicash.signals.rule import COMPONENTS, DEFAULT_WEIGHTS

Source = Literal["backtest", "trades"]
SAVE_ATTEMPTS = 3


class WeightsError(ValueError):
    """A weights optimization or save that cannot be done; the message says why and what to do."""


class WeightsNotImprovedError(WeightsError):
    """The new weights do not beat the weights in force out of sample; nothing was written."""


class StaleBaselineError(WeightsError):
    """Another weights version was saved after this optimization compared itself against the old one."""


@dataclass(frozen=True)
class WeightsVersion:
    version: int
    weights: dict[str, float]
    source: str
    metrics: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class WeightsResult:
    """What an optimization found, and how it compares with the weights in force on unseen data."""

    source: Source
    weights: dict[str, float]
    objective: str  # the out-of-sample figure compared: "sharpe" (backtest) or "auc" (trades)
    oos_score: float  # that figure for the new weights
    baseline_oos_score: float  # the same figure, same data, for the weights in force when the run started
    baseline_version: int | None  # their version; None = DEFAULT_WEIGHTS (no version saved yet)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def improves(self) -> bool:
        """True when the new weights beat the weights in force out of sample (strictly)."""
        return math.isfinite(self.oos_score) and self.oos_score > self.baseline_oos_score

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON, e.g. to pass between pipeline steps."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WeightsResult:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def normalize_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Every component, scaled so the largest |weight| is 1 (the score divides by the sum anyway), 6 decimals."""
    unknown = set(weights) - set(COMPONENTS)
    if unknown:
        raise WeightsError(f"unknown signal weights {sorted(unknown)}; known: {', '.join(COMPONENTS)}")
    values = {c: float(weights.get(c, 0.0)) for c in COMPONENTS}
    if not all(math.isfinite(v) for v in values.values()):
        raise WeightsError(f"weights must be finite numbers, got {values}")
    top = max(abs(v) for v in values.values())
    return {c: round(v / top, 6) if top > 0 else 0.0 for c, v in values.items()}


def latest_weights(engine: Engine) -> WeightsVersion | None:
    with session_scope(engine) as session:
        row = session.scalar(select(SignalWeights).order_by(SignalWeights.version.desc()).limit(1))
        if row is None:
            return None
        weights = {c: float(row.weights.get(c, 0.0)) for c in COMPONENTS}
        return WeightsVersion(row.version, weights, row.source, dict(row.metrics or {}), row.created_at)


def current_weights(engine: Engine) -> dict[str, float]:
    """The latest saved weights, or DEFAULT_WEIGHTS (all 1.0) when none was saved; what `GET /weights` serves."""
    latest = latest_weights(engine)
    return dict(DEFAULT_WEIGHTS) if latest is None else latest.weights


def list_weights(engine: Engine) -> list[WeightsVersion]:
    """Every saved version, newest first."""
    with session_scope(engine) as session:
        rows = session.scalars(select(SignalWeights).order_by(SignalWeights.version.desc())).all()
        return [WeightsVersion(r.version, {c: float(r.weights.get(c, 0.0)) for c in COMPONENTS}, r.source,
                               dict(r.metrics or {}), r.created_at) for r in rows]


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_weights(engine: Engine, result: WeightsResult, actor: str, *, force: bool = False) -> int:
    """Write `result` as version max+1 with an audit entry; returns the version.

    Refused (nothing written) when the weights do not beat the ones in force out of sample, unless `force`,
    and when another version was saved since the run measured its baseline.
    """
    if not result.improves and not force:
        raise WeightsNotImprovedError(
            f"out-of-sample {result.objective} {result.oos_score:.4f} does not beat the weights in force "
            f"({_named(result.baseline_version)}: {result.baseline_oos_score:.4f}); nothing written "
            "(force=True saves them anyway)"
        )
    weights = normalize_weights(result.weights)
    metrics = _json_safe({**result.metrics, "objective": result.objective, "oos_score": result.oos_score,
                          "baseline_oos_score": result.baseline_oos_score,
                          "baseline_version": result.baseline_version})
    for attempt in range(SAVE_ATTEMPTS):
        try:
            with session_scope(engine) as session:
                latest = session.scalar(select(func.max(SignalWeights.version)))
                if latest != result.baseline_version and not force:
                    raise StaleBaselineError(
                        f"weights version {latest} was saved after this run compared itself with "
                        f"{_named(result.baseline_version)}: run the optimization again"
                    )
                version = (latest or 0) + 1
                session.add(SignalWeights(version=version, weights=weights, source=result.source, metrics=metrics))
                session.add(AuditLog(actor=actor, action="weights.save", target=f"signal_weights:{version}", details={
                    "version": version, "source": result.source, "weights": weights, "objective": result.objective,
                    "oos_score": metrics["oos_score"], "baseline_oos_score": metrics["baseline_oos_score"],
                    "baseline_version": result.baseline_version, "forced": force and not result.improves,
                }))
            return version
        except IntegrityError:  # another writer took the same version number at the same moment
            if attempt == SAVE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _named(version: int | None) -> str:
    return "the default equal weights" if version is None else f"version {version}"
