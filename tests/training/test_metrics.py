import numpy as np
import pandas as pd
import pytest

from aicash.training.dataset import Samples
from aicash.training.metrics import (
    Metrics,
    Predictions,
    confusion_matrix,
    evaluate,
    expected_calibration_error,
    sharpe_ratio,
    strategy_returns,
)


def _samples(next_return, horizon_return, label, horizon=2) -> Samples:
    n = len(label)
    ts = pd.date_range("2024-01-01", periods=n, freq="1h").to_numpy("datetime64[ns]")
    return Samples(
        rows=np.ones((n, 16), np.float32), row_series=np.zeros(n, np.int32), end_row=np.arange(n),
        label=np.asarray(label), horizon_return=np.asarray(horizon_return, float),
        next_return=np.asarray(next_return, float), ts=ts, label_end_ts=ts + np.timedelta64(horizon, "h"),
        series=np.zeros(n, np.int32), series_keys=(("X", "1h"),), window=1, horizon=horizon, bars_per_year=100.0,
    )


def test_strategy_holds_each_trade_horizon_bars_with_1_over_horizon_of_capital_and_pays_cost():
    samples = _samples(next_return=[0.01, 0.02, -0.01, 0.03], horizon_return=[0.03, 0.01, 0.02, 0.0],
                       label=[2, 1, 0, 1])
    signs = np.array([1, 0, -1, 0])
    pnl = strategy_returns(samples, np.arange(4), signs, cost=0.001)
    assert np.allclose(pnl.to_numpy(), [0.0045, 0.01, 0.0045, -0.015])
    # the sum equals each trade's horizon return / horizon minus its cost share
    assert pnl.sum() == pytest.approx((0.03 - 0.001) / 2 + (-0.02 - 0.001) / 2)


def test_evaluate_counts_wins_after_cost_coverage_and_confusion():
    samples = _samples(next_return=[0.01, 0.02, -0.01, 0.03], horizon_return=[0.03, 0.0005, -0.02, 0.0],
                       label=[2, 1, 0, 1])
    pred = Predictions(predicted=np.array([2, 2, 0, 1]), confidence=np.array([0.9, 0.9, 0.6, 0.6]),
                       traded=np.array([True, True, False, False]))
    m = evaluate(pred, samples, np.arange(4), cost=0.001)
    assert m.trades == 2 and m.coverage == 0.5
    assert m.win_rate == 0.5  # +3 % wins; +0.05 % does not cover the 0.1 % cost; the untraded SELL is not a trade
    assert m.accuracy == 0.75
    assert m.confusion == [[1, 0, 0], [0, 1, 1], [0, 0, 1]]
    assert m.calibration_error == pytest.approx(0.5 * abs(0.5 - 0.9) + 0.5 * abs(1.0 - 0.6))
    assert Metrics.from_dict(m.to_dict()) == m


def test_no_trades_means_no_win_rate_and_zero_sharpe():
    samples = _samples([0.01, -0.01], [0.01, -0.01], [2, 0])
    pred = Predictions(np.array([1, 1]), np.array([0.5, 0.5]), np.array([False, False]))
    m = evaluate(pred, samples, np.arange(2), cost=0.0)
    assert m.win_rate is None and m.sharpe == 0.0 and m.cumulative_return == 0.0


def test_probabilities_are_traded_only_when_directional_and_confident():
    proba = np.array([[0.5, 0.3, 0.2], [0.35, 0.3, 0.35], [0.2, 0.6, 0.2], [0.1, 0.1, 0.8]])
    pred = Predictions.from_proba(proba, threshold=0.4)
    assert pred.predicted.tolist() == [0, 0, 1, 2]
    assert pred.traded.tolist() == [True, False, False, True]
    assert pred.signs.tolist() == [-1, 0, 0, 1]


def test_calibration_error_sharpe_and_confusion_by_hand():
    assert expected_calibration_error(np.array([0.95, 0.95]), np.array([True, True])) == pytest.approx(0.05)
    assert expected_calibration_error(np.array([]), np.array([], bool)) == 0.0
    assert sharpe_ratio(np.array([0.01, 0.03]), 4.0) == pytest.approx(0.02 / np.std([0.01, 0.03], ddof=1) * 2)
    assert sharpe_ratio(np.array([0.01, 0.01]), 4.0) == 0.0
    assert confusion_matrix(np.array([0, 2, 2]), np.array([0, 1, 2])).tolist() == [[1, 0, 0], [0, 0, 0], [0, 1, 1]]
