import numpy as np
import pandas as pd
import pytest

from aicash.training.dataset import Samples
from aicash.training.metrics import (
    Metrics,
    Predictions,
    confusion_matrix,
    directional_accuracy,
    evaluate,
    expected_calibration_error,
    information_coefficient,
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


def test_directional_accuracy_counts_traded_signals_against_the_sign_of_the_horizon_return_before_costs():
    # BUY on +0.05 % (right before costs, a loss after them), SELL on -2 % (right), BUY on -1 % (wrong); the
    # untraded bar does not count
    samples = _samples([0.0] * 4, horizon_return=[0.0005, -0.02, -0.01, 0.03], label=[1, 0, 0, 2])
    pred = Predictions(np.array([2, 0, 2, 2]), np.array([0.9, 0.9, 0.9, 0.3]), np.array([True, True, True, False]))
    m = evaluate(pred, samples, np.arange(4), cost=0.001)
    assert m.directional_accuracy == pytest.approx(2 / 3) and m.win_rate == pytest.approx(1 / 3)
    assert directional_accuracy(np.array([0, 0]), np.array([0.1, -0.1])) is None  # no trades
    assert directional_accuracy(np.array([1, -1]), np.array([0.0, 0.0])) == 0.0  # a flat return is no direction


def test_information_coefficient_is_the_rank_correlation_of_buy_minus_sell_with_the_return():
    returns = np.array([-0.03, -0.01, 0.002, 0.02, 0.05])
    buy = np.array([0.1, 0.2, 0.3, 0.4, 0.9])  # P(BUY) - P(SELL) rises with the return, not linearly
    proba = np.column_stack([0.1 * np.ones(5), 0.9 - buy, buy])
    assert information_coefficient(proba, returns) == pytest.approx(1.0)
    assert information_coefficient(proba[::-1], returns) == pytest.approx(-1.0)
    shuffled = proba[[0, 2, 1, 4, 3]]
    assert information_coefficient(shuffled, returns) == pytest.approx(0.8)  # 1 - 6 * 4 / (5 * 24)
    assert information_coefficient(None, returns) is None
    assert information_coefficient(np.full((5, 3), 1 / 3), returns) is None  # constant score
    samples = _samples([0.0] * 5, returns, [0, 0, 1, 2, 2])
    m = evaluate(Predictions.from_proba(proba, 0.4), samples, np.arange(5), cost=0.0)
    assert m.information_coefficient == pytest.approx(1.0)
    assert evaluate(Predictions(np.ones(5, int), np.ones(5), np.zeros(5, bool)), samples, np.arange(5),
                    0.0).information_coefficient is None  # the rule gives no probabilities


def test_metrics_of_an_older_metrics_json_read_back_without_the_newer_figures():
    samples = _samples([0.01, -0.01], [0.01, -0.01], [2, 0])
    m = evaluate(Predictions(np.array([2, 0]), np.array([0.9, 0.9]), np.array([True, True])), samples,
                 np.arange(2), cost=0.0)
    old = {k: v for k, v in m.to_dict().items() if k not in ("directional_accuracy", "information_coefficient")}
    back = Metrics.from_dict(old)
    assert back.directional_accuracy is None and back.information_coefficient is None and back.accuracy == 1.0
    with pytest.raises(KeyError, match="accuracy"):
        Metrics.from_dict({k: v for k, v in old.items() if k != "accuracy"})
