"""The search-aware statistics: the Deflated Sharpe Ratio against the paper's worked example, and CSCV's
probability of backtest overfitting on searches with and without a real edge."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aicash.training.overfitting import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
)


def test_the_papers_worked_example() -> None:
    """Bailey & López de Prado (2014): 100 trials, annualized Sharpe variance 0.5, the best annualized Sharpe 2.5
    over 5 years of daily returns (T = 1250) with skewness -3 and kurtosis 10: SR0 = 0.1132 per day (1.7894 a year)
    and DSR = 0.9004."""
    sr0 = expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.1132, abs=5e-5) and sr0 * math.sqrt(250) == pytest.approx(1.7894, abs=5e-4)
    dsr = probabilistic_sharpe_ratio(2.5 / math.sqrt(250), sr0, 1250, -3.0, 10.0)
    assert dsr == pytest.approx(0.9004, abs=5e-5)


def test_more_trials_deflate_more_and_one_trial_is_the_psr_against_zero() -> None:
    rng = np.random.default_rng(7)
    returns = rng.normal(0.05, 1.0, 2000)
    one, hundred, thousand = (deflated_sharpe_ratio(returns, n, 0.002) for n in (1, 100, 1000))
    assert one.expected_max_sharpe == 0 and one.probability == pytest.approx(
        probabilistic_sharpe_ratio(one.sharpe, 0.0, 2000, one.skewness, one.kurtosis))
    assert one.probability > hundred.probability > thousand.probability
    assert one.kurtosis == pytest.approx(3, abs=0.3)  # normal returns: kurtosis (not excess) near 3


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(ValueError, match="returns"):
        deflated_sharpe_ratio(np.ones(10), 5, 0.01)
    with pytest.raises(ValueError, match="n_trials"):
        expected_max_sharpe(0, 0.01)
    with pytest.raises(ValueError, match="two configurations"):
        probability_of_backtest_overfitting(np.zeros((100, 1)))
    with pytest.raises(ValueError, match="even"):
        probability_of_backtest_overfitting(np.zeros((100, 4)), n_blocks=5)


def test_a_search_over_noise_overfits_about_half_the_time() -> None:
    """50 configurations with no edge at all: the in-sample winner is a coin toss out of sample."""
    rng = np.random.default_rng(11)
    pbo = probability_of_backtest_overfitting(rng.normal(0, 1, (1600, 50)), n_blocks=10)
    assert pbo.splits == math.comb(10, 5) == 252 and pbo.n_trials == 50
    assert 0.3 < pbo.probability < 0.7


def test_a_search_with_one_real_edge_does_not_overfit() -> None:
    rng = np.random.default_rng(13)
    matrix = rng.normal(0, 1, (1600, 50))
    matrix[:, 17] += 0.25  # one configuration with a genuine, persistent edge
    pbo = probability_of_backtest_overfitting(matrix, n_blocks=10)
    assert pbo.probability < 0.05
