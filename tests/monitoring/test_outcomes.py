"""Outcomes: predictions joined with hand-made candles; live metrics per version and day; the CLI table."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import select

from aicash.db.models import LiveMetrics, PredictionOutcome
from aicash.market.store import upsert_candles
from aicash.monitoring.outcomes import ModelSpec, decisions, evaluate, figures, update_outcomes
from tests.support.monitoring import METRICS, indicator_frame, log_outcomes, log_predictions, register_version

T0 = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
CLOSES = [1.000, 1.001, 1.002, 1.003, 1.004, 1.005, 1.006, 1.007, 1.008, 1.009, 1.000, 0.990]
H = timedelta(hours=1)


def candles(closes: list[float] = CLOSES) -> pd.DataFrame:
    ts = pd.date_range(T0, periods=len(closes), freq="h", tz="UTC")
    return pd.DataFrame({"symbol": "EURUSD", "timeframe": "1h", "ts": ts, "open": closes, "high": closes,
                         "low": closes, "close": closes, "volume": 1.0})


# (name, at, signal, confidence, volatility_20)
CASES = [
    ("A up, BUY traded, win", T0 + 2 * H + timedelta(minutes=30), "BUY", 0.6, 0.001),
    ("B down, BUY traded, loss", T0 + 6 * H, "BUY", 0.7, 0.001),
    ("C inside the band, HOLD", T0 + 5 * H + timedelta(minutes=59), "HOLD", 0.5, 0.01),
    ("D up, SELL below threshold", T0 + 3 * H, "SELL", 0.3, 0.001),
    ("E exit bar not there yet", T0 + 8 * H, "BUY", 0.6, 0.001),
    ("F before the first candle", T0 - H, "BUY", 0.6, 0.001),
]


def pending_frame() -> pd.DataFrame:
    return pd.DataFrame([{"prediction_id": i + 1, "model_version": "v1", "symbol": "EURUSD", "timeframe": "1h",
                          "signal": s, "confidence": c, "volatility_20": v, "created_at": pd.Timestamp(at)}
                         for i, (_, at, s, c, v) in enumerate(CASES)])


def test_join_on_hand_made_candles() -> None:
    out = evaluate(pending_frame(), candles(), {"v1": ModelSpec(horizon_bars=4)}).set_index("prediction_id")

    assert sorted(out.index) == [1, 2, 3, 4]  # E waits for bar 12, F has no entry bar
    a, b, c, d = (out.loc[i] for i in (1, 2, 3, 4))
    assert a.entry_ts == pd.Timestamp(T0 + 2 * H) and a.exit_ts == pd.Timestamp(T0 + 6 * H)
    assert (a.entry_close, a.exit_close) == (1.002, 1.006)
    assert math.isclose(a.realized_return, math.log(1.006 / 1.002))
    assert (a.realized_signal, a.correct, a.traded, a.win) == ("BUY", True, True, True)
    assert b.entry_ts == pd.Timestamp(T0 + 6 * H)  # a prediction at the bar's own time uses that bar
    assert (b.realized_signal, b.correct, b.traded, b.win) == ("SELL", False, True, False)
    assert math.isclose(b.realized_return, math.log(1.000 / 1.006))
    # +0.4% is inside 0.5 x 0.01 x sqrt(4) = 1%: flat, and HOLD is never traded
    assert (c.realized_signal, c.correct, c.traded, c.win) == ("HOLD", True, False, None)
    assert (d.realized_signal, d.correct, d.traded, d.win) == ("BUY", False, False, None)


def test_horizon_and_cost_come_from_the_model_spec() -> None:
    frame = pending_frame().iloc[[0]].assign(model_version="v2")
    out = evaluate(frame, candles(), {"v2": ModelSpec(horizon_bars=2, cost_per_trade=0.01)})
    row = out.iloc[0]
    assert row.exit_ts == pd.Timestamp(T0 + 4 * H) and row.horizon_bars == 2
    assert row.correct and row.traded and not row.win  # +0.2% does not pay a 1% cost
    f = figures(out)
    assert (f.wins, f.win_rate, f.direction_hits, f.directional_accuracy) == (0, 0.0, 1, 1.0)  # direction: before costs
    assert ModelSpec.from_metrics(METRICS) == ModelSpec(4, 0.5, 0.4, 0.0001)
    assert ModelSpec.from_metrics({"config": {"horizon_bars": 12}}).horizon_bars == 12
    assert ModelSpec.from_metrics({}) == ModelSpec()


def test_decisions_count_each_bar_once() -> None:
    frame = pd.concat([pending_frame().iloc[[0, 0, 0, 1]]]).assign(prediction_id=[1, 2, 3, 4])
    out = evaluate(frame, candles(), {"v1": ModelSpec()})
    assert len(out) == 4 and len(decisions(out)) == 2
    f = figures(decisions(out))
    assert (f.decisions, f.correct, f.trades, f.wins, f.accuracy, f.win_rate) == (2, 1, 2, 1, 0.5, 0.5)
    assert (f.direction_hits, f.directional_accuracy) == (1, 0.5)  # A's BUY went up, B's went down


def test_directional_accuracy_counts_traded_signals_only_and_a_flat_return_matches_neither() -> None:
    """The measure the training gate's MIN_ACCURACY applies to (`aicash.training.metrics.directional_accuracy`): of
    the traded signals, the share whose side has the sign of the realized return, before costs."""
    from aicash.training.metrics import directional_accuracy

    rows = [  # signal, traded, realized return, three-class correct, win after costs
        ("BUY", True, 0.002, False, True),  # up, though inside the flat band: direction right, three-class wrong
        ("SELL", True, -0.00005, True, False),  # down, by less than the cost: direction right, no win
        ("SELL", True, 0.003, False, False),
        ("BUY", True, 0.0, False, False),  # flat: neither direction
        ("BUY", False, 0.01, True, None),  # below the threshold: not traded
        ("HOLD", False, -0.02, False, None),
    ]
    outcomes = pd.DataFrame([{"signal": s, "traded": t, "realized_return": r, "correct": c, "win": w,
                              "confidence": 0.6} for s, t, r, c, w in rows])
    f = figures(outcomes)
    assert (f.decisions, f.correct, f.trades, f.wins, f.direction_hits) == (6, 2, 4, 1, 2)
    assert f.directional_accuracy == 0.5 and f.accuracy == pytest.approx(1 / 3)
    signs = outcomes["signal"].map({"BUY": 1, "SELL": -1, "HOLD": 0}).where(outcomes["traded"], 0).to_numpy()
    assert f.directional_accuracy == directional_accuracy(signs, outcomes["realized_return"].to_numpy())
    assert figures(outcomes.assign(traded=False)).directional_accuracy is None


def _log_cases(engine, version: str = "v1") -> None:  # type: ignore[no-untyped-def]
    for _, at, signal, confidence, volatility in CASES:
        features = indicator_frame(1, seed=1).assign(volatility_20=volatility)
        log_predictions(engine, features, version=version, at=at, signals=[signal], confidence=confidence)


def test_update_outcomes_stores_outcomes_and_daily_metrics(engine, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    register_version(engine, settings, tmp_path / "v1", "v1")
    upsert_candles(engine, "EURUSD", "1h", candles())
    _log_cases(engine)
    log_predictions(engine, indicator_frame(1, seed=1).assign(volatility_20=0.001), version="v1",
                    at=CASES[0][1] + timedelta(minutes=5), signals=["BUY"])  # the same decision as A again

    first = update_outcomes(engine)

    assert first.evaluated == 5 and first.pending == 2
    assert first.days == [("v1", T0.date())]
    with engine.connect() as conn:
        stored = conn.execute(select(PredictionOutcome)).all()
        daily = conn.execute(select(LiveMetrics)).one()
    assert len(stored) == 5
    assert (daily.model_version, daily.day) == ("v1", T0.date())
    # decisions: A (twice, counted once), B, C, D -> 4; right: A, C; traded: A, B; won: A
    assert (daily.decisions, daily.correct, daily.trades, daily.wins) == (4, 2, 2, 1)
    assert daily.accuracy == 0.5 and daily.win_rate == 0.5
    assert math.isclose(daily.mean_trade_return, (math.log(1.006 / 1.002) + math.log(1.000 / 1.006)) / 2)  # both BUY

    assert update_outcomes(engine).evaluated == 0  # idempotent
    upsert_candles(engine, "EURUSD", "1h", candles([*CLOSES, 0.980]))  # bar 12 arrives: E's horizon has passed
    second = update_outcomes(engine)
    assert second.evaluated == 1 and second.pending == 1
    with engine.connect() as conn:
        assert conn.execute(select(LiveMetrics.decisions)).scalar_one() == 5


def test_outcomes_command_shows_the_table(cli, engine, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    register_version(engine, settings, tmp_path / "v1", "v1")
    upsert_candles(engine, "EURUSD", "1h", candles())
    _log_cases(engine)
    result = cli("monitor", "outcomes", "--days", "7")
    assert result.exit_code == 0, result.output
    assert "evaluated 4 predictions; 2 still wait" in result.stdout
    assert str(T0.date()) in result.stdout and "0.500" in result.stdout


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_outcomes_without_data_says_so(cli, engine) -> None:  # type: ignore[no-untyped-def]
    result = cli("monitor", "outcomes")
    assert result.exit_code == 0 and "no live metrics in the last 7 days" in result.stdout
    assert cli("monitor", "outcomes", "--days", "0").exit_code == 2


def test_daily_figures_are_stored_shown_and_exported_per_version_and_day(cli, engine, production, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Per day: stored in live_metrics, printed by `outcomes`, exported as aicash_live_daily_*{model_version,day};
    the rolling aicash_live_accuracy pools the 7 days."""
    from prometheus_client.parser import text_string_to_metric_families

    from aicash.monitoring import status as st
    from aicash.monitoring.outcomes import recompute_live_metrics

    day1 = (datetime.now(UTC) - timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
    day2 = day1 + timedelta(days=1)
    log_outcomes(engine, production, correct=3, wrong=1, start=day1)  # 3 of 4 right, 3 of 4 trades won
    log_outcomes(engine, production, correct=1, wrong=3, wins=0, start=day2)  # 1 of 4 right, no trade won
    recompute_live_metrics(engine, [(production, day1.date()), (production, day2.date())])

    with engine.connect() as conn:
        stored = {r.day: (r.accuracy, r.win_rate) for r in conn.execute(select(LiveMetrics)).all()}
    assert stored == {day1.date(): (0.75, 0.75), day2.date(): (0.25, 0.0)}

    shown = cli("monitor", "outcomes", "--days", "7")
    assert shown.exit_code == 0, shown.output
    lines = {line.split()[1]: line for line in shown.stdout.splitlines() if production in line and "│" in line}
    assert "0.750" in lines[str(day1.date())] and "0.250" in lines[str(day2.date())]

    textfile = tmp_path / "aicash.prom"
    assert cli("monitor", "metrics", "--textfile", str(textfile)).exit_code == 0
    families = {f.name: f for f in text_string_to_metric_families(textfile.read_text())}
    daily = {(s.labels["day"], s.name): s.value for name in (st.DAILY_ACCURACY, st.DAILY_WIN_RATE, st.DAILY_DECISIONS)
             for s in families[name].samples if s.labels["model_version"] == production}
    d1, d2 = str(day1.date()), str(day2.date())
    assert daily == {(d1, st.DAILY_ACCURACY): 0.75, (d2, st.DAILY_ACCURACY): 0.25, (d1, st.DAILY_WIN_RATE): 0.75,
                     (d2, st.DAILY_WIN_RATE): 0.0, (d1, st.DAILY_DECISIONS): 4, (d2, st.DAILY_DECISIONS): 4}
    assert families[st.LIVE_ACCURACY].samples[0].value == pytest.approx(0.5)  # rolling: 4 right of 8
    assert families[st.LIVE_WIN_RATE].samples[0].value == pytest.approx(3 / 8)
    assert families[st.LIVE_DIRECTIONAL_ACCURACY].samples[0].value == pytest.approx(3 / 8)  # 3 of 8 trades went up
