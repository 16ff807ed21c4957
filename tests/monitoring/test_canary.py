"""The canary judged on live results: promote a clearly better one, end a clearly worse one, wait below the
minimum sample; the statistics on their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from aicash.db.models import AuditLog
from aicash.monitoring.canary import Arm, judge, two_proportion_test
from aicash.monitoring.outcomes import LiveFigures
from aicash.registry import get_model, promote, traffic_split
from tests.support.monitoring import indicator_frame, log_outcomes, register_version


@pytest.fixture
def canary(engine, settings, production, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """v2 took 10% of the traffic two hours ago."""
    register_version(engine, settings, tmp_path / "artifacts-v2", "v2", reference=indicator_frame(100, seed=2))
    promote(engine, "v2", 10, actor="test")
    with engine.begin() as conn:
        conn.execute(update(AuditLog).where(AuditLog.target == "signal-lstm:v2", AuditLog.action == "model.promote")
                     .values(at=datetime.now(UTC) - timedelta(hours=2)))
    return "v2"


def _since_canary() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


def test_a_clearly_better_canary_is_promoted(cli, engine, production, canary) -> None:  # type: ignore[no-untyped-def]
    log_outcomes(engine, canary, correct=170, wrong=80, start=_since_canary())  # 68%
    log_outcomes(engine, production, correct=120, wrong=130, start=_since_canary())  # 48%

    dry = cli("monitor", "canary", "--min-samples", "200")
    assert dry.exit_code == 0, dry.output
    assert "promote: canary significantly better on accuracy" in dry.stdout and "dry run" in dry.stdout
    assert get_model(engine, canary).status == "approved"

    applied = cli("monitor", "canary", "--min-samples", "200", "--apply")
    assert applied.exit_code == 0, applied.output
    assert "v2 promoted to production (100%)" in applied.stdout
    assert traffic_split(engine) == [("v2", 100.0)]
    assert get_model(engine, production).status == "archived"
    with engine.connect() as conn:
        entries = conn.execute(select(AuditLog).where(AuditLog.actor == "monitor").order_by(AuditLog.id)).all()
    assert [e.action for e in entries] == ["model.promote", "monitor.canary"]
    assert "live canary judgement: promote" in entries[0].details["reason"]
    assert entries[1].details["canary"]["correct"] == 170 and entries[1].details["action"] == "promote"


def test_a_clearly_worse_canary_is_rolled_back(cli, engine, production, canary) -> None:  # type: ignore[no-untyped-def]
    log_outcomes(engine, canary, correct=90, wrong=160, start=_since_canary())  # 36%
    log_outcomes(engine, production, correct=150, wrong=100, start=_since_canary())  # 60%

    result = cli("monitor", "canary", "--apply")

    assert result.exit_code == 0, result.output
    assert "rollback: canary significantly worse on accuracy" in result.stdout
    assert "canary v2 ended (traffic 0); v1 serves 100%" in result.stdout
    assert traffic_split(engine) == [("v1", 100.0)]
    with engine.connect() as conn:
        audit = conn.execute(select(AuditLog).where(AuditLog.action == "monitor.canary")).one()
    assert audit.actor == "monitor" and audit.details["action"] == "rollback"


def test_below_the_minimum_sample_nothing_happens(cli, engine, production, canary) -> None:  # type: ignore[no-untyped-def]
    log_outcomes(engine, canary, correct=10, wrong=90, start=_since_canary())  # dreadful, but only 100 decisions
    log_outcomes(engine, production, correct=150, wrong=100, start=_since_canary())

    result = cli("monitor", "canary", "--min-samples", "200", "--apply")

    assert result.exit_code == 0, result.output
    assert "insufficient: need 200 evaluated decisions per version, v2 has 100" in result.stdout
    assert traffic_split(engine) == [("v2", 10.0), ("v1", 90.0)]
    with engine.connect() as conn:
        assert conn.execute(select(AuditLog).where(AuditLog.actor == "monitor")).all() == []


def test_outcomes_before_the_canary_started_do_not_count(cli, engine, production, canary) -> None:  # type: ignore[no-untyped-def]
    log_outcomes(engine, canary, correct=250, wrong=0, start=datetime.now(UTC) - timedelta(days=3))
    log_outcomes(engine, production, correct=0, wrong=250, start=datetime.now(UTC) - timedelta(days=3))
    result = cli("monitor", "canary")
    assert "insufficient" in result.stdout and "v2 has 0" in result.stdout


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_no_canary_is_bad_input(cli, engine, production) -> None:  # type: ignore[no-untyped-def]
    result = cli("monitor", "canary")
    assert result.exit_code == 2 and "no canary is serving" in result.stderr and "--traffic 10" in result.stderr


# -- the rule on its own ---------------------------------------------------------------------------------------
def _arm(version: str, correct: int, n: int, wins: int = 0, trades: int = 0, p95: float | None = 2.0) -> Arm:
    return Arm(version, LiveFigures(n, correct, trades, wins, None), n, p95)


NOW = datetime.now(UTC)


def test_z_test_matches_a_hand_computation() -> None:
    z, p_better, p_worse = two_proportion_test(60, 100, 45, 100)
    # pooled p = 0.525, se = sqrt(0.525 * 0.475 * 0.02) = 0.07062, z = 0.15 / 0.07062 = 2.124
    assert z == pytest.approx(2.124, abs=1e-3)
    assert p_better == pytest.approx(0.01683, abs=1e-4) and p_worse == pytest.approx(1 - 0.01683, abs=1e-4)


def test_win_rate_is_tested_with_enough_trades_and_alpha_is_split() -> None:
    canary = _arm("v2", correct=100, n=200, wins=60, trades=80)
    production = _arm("v1", correct=100, n=200, wins=28, trades=80)
    verdict = judge(canary, production, NOW, min_samples=200)
    assert verdict.action == "promote" and "better on win_rate" in verdict.reasons[0]
    assert [c.metric for c in verdict.comparisons] == ["accuracy", "win_rate"]
    assert "alpha 0.025" in verdict.text()
    few_trades = judge(_arm("v2", 100, 200, wins=20, trades=20), _arm("v1", 100, 200, wins=5, trades=20), NOW, 200)
    assert few_trades.action == "wait" and [c.metric for c in few_trades.comparisons] == ["accuracy"]


def test_latency_guard_rolls_back_a_slow_canary() -> None:
    slow = judge(_arm("v2", 110, 200, p95=120.0), _arm("v1", 100, 200, p95=20.0), NOW, 200)
    assert slow.action == "rollback" and "latency 120 ms vs production 20 ms" in slow.text()
    slightly = judge(_arm("v2", 100, 200, p95=2.9), _arm("v1", 100, 200, p95=1.2), NOW, 200)
    assert slightly.action == "wait"  # 2.4x, but 1.7 ms is no reason to end a canary
    over_limit = judge(_arm("v2", 100, 200, p95=1500.0), _arm("v1", 100, 200, p95=1400.0), NOW, 200)
    assert over_limit.action == "rollback" and "above the 1000 ms limit" in over_limit.text()


def test_a_forced_canary_is_not_promoted_automatically(engine, settings, production, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from aicash.monitoring.canary import apply

    register_version(engine, settings, tmp_path / "v3", "v3", approved=False)
    promote(engine, "v3", 10, force=True, reason="try it", actor="test")
    verdict = judge(_arm("v3", 150, 200), _arm(production, 100, 200), NOW, 200)
    result = apply(engine, verdict)
    assert verdict.action == "promote" and not result.changed and "promote it by hand" in result.message
    assert traffic_split(engine) == [("v3", 10.0), (production, 90.0)]
