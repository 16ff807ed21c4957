"""Weights versions: defaults when none, max+1 versions with audit, the out-of-sample gate, stale baselines."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from aicash.db.engine import session_scope
from aicash.db.models import AuditLog
from aicash.signals.rule import COMPONENTS, DEFAULT_WEIGHTS
from aicash.signals.weights import (
    StaleBaselineError,
    WeightsError,
    WeightsNotImprovedError,
    WeightsResult,
    current_weights,
    latest_weights,
    list_weights,
    normalize_weights,
    save_weights,
)


def result(score: float, baseline: float, baseline_version: int | None = None, **weights: float) -> WeightsResult:
    return WeightsResult(source="backtest", weights=weights or {"rsi": 2.0, "macd": -1.0}, objective="sharpe",
                         oos_score=score, baseline_oos_score=baseline, baseline_version=baseline_version,
                         metrics={"out_of_sample": {"optimized": {"sharpe": score}}})


def test_defaults_until_a_version_is_saved(engine) -> None:  # type: ignore[no-untyped-def]
    assert current_weights(engine) == dict(DEFAULT_WEIGHTS) and latest_weights(engine) is None
    assert save_weights(engine, result(1.5, 0.2), actor="pipeline") == 1
    assert current_weights(engine) == {c: {"rsi": 1.0, "macd": -0.5}.get(c, 0.0) for c in COMPONENTS}
    assert save_weights(engine, result(1.9, 1.5, baseline_version=1, stochastic=1.0), actor="pipeline") == 2
    assert [v.version for v in list_weights(engine)] == [2, 1] and current_weights(engine)["stochastic"] == 1.0
    stored = latest_weights(engine)
    assert stored.source == "backtest" and stored.metrics["oos_score"] == 1.9
    assert stored.metrics["baseline_version"] == 1
    with session_scope(engine) as session:
        query = select(AuditLog).where(AuditLog.action == "weights.save").order_by(AuditLog.id)
        entries = [(e.actor, e.target) for e in session.scalars(query)]
    assert entries == [("pipeline", "signal_weights:1"), ("pipeline", "signal_weights:2")]


def test_only_better_weights_are_written_unless_forced(engine) -> None:  # type: ignore[no-untyped-def]
    worse = result(0.4, 0.5)
    assert not worse.improves and not result(0.5, 0.5).improves and not result(float("nan"), 0.0).improves
    with pytest.raises(WeightsNotImprovedError, match=r"sharpe 0.4000 does not beat .*default equal weights: 0.5000"):
        save_weights(engine, worse, actor="pipeline")
    assert latest_weights(engine) is None
    assert save_weights(engine, worse, actor="ops", force=True) == 1
    with session_scope(engine) as session:
        assert session.scalars(select(AuditLog).where(AuditLog.action == "weights.save")).one().details["forced"]


def test_a_stale_comparison_is_refused(engine) -> None:  # type: ignore[no-untyped-def]
    first, second = result(1.0, 0.0), result(2.0, 0.0)  # both measured against the defaults
    save_weights(engine, first, actor="a")
    with pytest.raises(StaleBaselineError, match="version 1 was saved after this run"):
        save_weights(engine, second, actor="b")


def test_normalize_and_serialize() -> None:
    assert normalize_weights({"rsi": -4.0, "macd": 2.0})["rsi"] == -1.0
    with pytest.raises(WeightsError, match="unknown signal weights"):
        normalize_weights({"volume": 1.0})
    r = result(1.0, 0.5)
    assert WeightsResult.from_dict(r.to_dict()) == r
