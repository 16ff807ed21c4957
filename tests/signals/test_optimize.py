"""Weight optimization on a planted signal, from candles (walk-forward) and from imported trades."""

from __future__ import annotations

from pathlib import Path

import pytest

from aicash.market.ingest import ingest_frame
from aicash.signals.optimize import (
    NotEnoughDataError,
    optimize_from_backtest,
    optimize_from_trades,
    optimize_on_candles,
)
from aicash.signals.rule import COMPONENTS, DEFAULT_WEIGHTS
from aicash.signals.weights import WeightsNotImprovedError, current_weights, latest_weights, save_weights
from tests.support.signals import mean_reverting_candles, rsi_driven_trades


def test_planted_signal_beats_equal_weights_out_of_sample() -> None:
    import pandas as pd

    candles = pd.concat([mean_reverting_candles(1500, 1, "SYNA"), mean_reverting_candles(1500, 2, "SYNB")])
    found = optimize_on_candles(candles, folds=2)
    oos, ins = found.metrics["out_of_sample"], found.metrics["in_sample"]
    assert oos["optimized"]["sharpe"] > oos["default"]["sharpe"] + 2.0 and oos["optimized"]["sharpe"] > 2.0
    assert ins["optimized"]["sharpe"] > ins["default"]["sharpe"]
    assert all(f["optimized_sharpe"] > f["default_sharpe"] for f in found.metrics["fold_detail"])
    contrarian = sum(found.weights[c] for c in ("rsi", "bollinger", "stochastic"))
    assert contrarian > sum(found.weights[c] for c in ("adx_trend", "ema_cross", "macd")) and contrarian > 0.5
    assert set(found.weights) == set(COMPONENTS) and max(abs(w) for w in found.weights.values()) == 1.0
    assert found.improves and found.baseline_version is None and found.objective == "sharpe"
    assert found.metrics["train_period"]["end"] < found.metrics["out_of_sample_period"]["start"]
    assert found.metrics["fold_detail"][-1]["period"] == found.metrics["out_of_sample_period"]
    walk = found.metrics["walk_forward"]
    assert walk["optimized"]["sharpe"] > walk["default"]["sharpe"]
    assert walk["optimized"]["rows"] > oos["optimized"]["rows"]


def test_optimize_from_stored_candles_and_save(engine) -> None:  # type: ignore[no-untyped-def]
    for seed, symbol in ((3, "SYNA"), (4, "SYNB")):
        ingest_frame(engine, mean_reverting_candles(1200, seed, symbol).drop(columns=["symbol", "timeframe"]),
                     symbol, "1h")
    found = optimize_from_backtest(engine, ["SYNA", "SYNB"], "1h")
    assert found.metrics["symbols"] == ["SYNA", "SYNB"] and found.metrics["timeframe"] == "1h"
    assert save_weights(engine, found, actor="pipeline:signal-weights") == 1
    assert current_weights(engine) == found.weights

    again = optimize_from_backtest(engine, ["SYNA", "SYNB"], "1h")  # now compared with version 1, the same fit
    assert again.baseline_version == 1 and again.oos_score == pytest.approx(again.baseline_oos_score)
    with pytest.raises(WeightsNotImprovedError):
        save_weights(engine, again, actor="pipeline:signal-weights")
    assert latest_weights(engine).version == 1
    with pytest.raises(NotEnoughDataError, match="no 1h candles stored for EURUSD"):
        optimize_from_backtest(engine, ["EURUSD"], "1h")
    with pytest.raises(NotEnoughDataError, match="only .* bars"):
        optimize_from_backtest(engine, ["SYNA"], "1h", min_bars=5000)


def test_optimize_from_imported_trades(cli, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "trades.csv"
    rsi_driven_trades(20, seed=5).to_csv(path, index=False)
    assert cli("db", "import-trades", str(path)).exit_code == 0
    with pytest.raises(NotEnoughDataError, match=r"only 20 closed trades .*need at least 40.*import-trades FILE"):
        optimize_from_trades(engine)

    rsi_driven_trades(300, seed=6).to_csv(path, index=False)
    assert cli("db", "import-trades", str(path)).exit_code == 0
    found = optimize_from_trades(engine)
    oos = found.metrics["out_of_sample"]
    assert found.source == "trades" and found.objective == "auc" and oos["optimized"]["trades"] >= 90
    assert oos["optimized"]["auc"] > oos["default"]["auc"] and oos["optimized"]["auc"] > 0.7
    assert max(found.weights, key=lambda c: abs(found.weights[c])) == "rsi" and found.weights["rsi"] > 0
    assert found.metrics["train_period"]["end"] < found.metrics["out_of_sample_period"]["start"]
    version = save_weights(engine, found, actor="pipeline:signal-weights")
    assert latest_weights(engine).source == "trades" and latest_weights(engine).version == version
    assert current_weights(engine) != dict(DEFAULT_WEIGHTS)
