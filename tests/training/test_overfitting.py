"""The search-aware statistics: the Deflated Sharpe Ratio against the paper's worked example, and CSCV's
probability of backtest overfitting on searches with and without a real edge."""

from __future__ import annotations

import json
import math
from itertools import combinations

import numpy as np
import pytest
from scipy import stats

from aicash.training.overfitting import (
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    probability_of_backtest_overfitting,
    search_evidence,
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


def _pbo_by_definition(matrix: np.ndarray, n_blocks: int) -> list[float]:
    """CSCV written as the paper states it, split by split: the reference for the vectorised version."""
    blocks = np.array_split(matrix, n_blocks)

    def sharpe(r: np.ndarray) -> np.ndarray:
        std = r.std(axis=0, ddof=1)
        return np.divide(r.mean(axis=0), std, out=np.zeros(r.shape[1]), where=std > 0)

    logits = []
    for chosen in combinations(range(n_blocks), n_blocks // 2):
        inside = np.vstack([blocks[i] for i in chosen])
        outside = np.vstack([blocks[i] for i in range(n_blocks) if i not in chosen])
        best = int(np.argmax(sharpe(inside)))
        rank = float(stats.rankdata(sharpe(outside))[best]) / (matrix.shape[1] + 1)
        logits.append(math.log(rank / (1 - rank)))
    return logits


def test_the_vectorised_cscv_gives_the_definitions_logits_ties_and_silent_trials_included() -> None:
    rng = np.random.default_rng(3)
    matrix = rng.normal(1e-4, 1e-3, (997, 8))  # blocks of unequal length
    matrix[:, 3] = 0.0  # two trials that never trade: tied Sharpe ratios of 0
    matrix[:, 5] = 0.0
    pbo = probability_of_backtest_overfitting(matrix, n_blocks=10)
    assert list(pbo.logits) == pytest.approx(_pbo_by_definition(matrix, 10), abs=1e-12)


def test_search_evidence_of_a_search() -> None:
    """16 trials over 3,000 bars: C(16, 8) = 12,870 splits (vectorised: about 0.1 s here)."""
    rng = np.random.default_rng(21)
    trials = rng.normal(0.0, 0.01, (3000, 16))
    sharpes = trials.mean(axis=0) / trials.std(axis=0, ddof=1)
    winner = int(np.argmax(sharpes))
    evidence = search_evidence(trials[:, winner], sharpes, trials)
    assert evidence["trials"] == 16 and evidence["sharpe_variance"] == pytest.approx(np.var(sharpes, ddof=1))
    dsr = evidence["deflated_sharpe"]
    expected = deflated_sharpe_ratio(trials[:, winner], 16, np.var(sharpes, ddof=1))
    assert dsr["probability"] == pytest.approx(expected.probability) and dsr["n_trials"] == 16
    assert dsr["observations"] == 3000 and dsr["probability"] < 0.95  # the best of 16 noise trials is not skill
    pbo = probability_of_backtest_overfitting(trials, 16)
    assert evidence["pbo"] == {"probability": pbo.probability, "splits": 12870, "n_trials": 16, "n_blocks": 16}
    assert json.loads(json.dumps(evidence)) == evidence  # JSON-ready


def test_search_evidence_of_a_single_run_and_of_short_or_silent_searches() -> None:
    rng = np.random.default_rng(22)
    returns = rng.normal(0.001, 0.01, 500)
    single = search_evidence(returns, [0.1])
    assert single["trials"] == 1 and single["sharpe_variance"] == 0.0 and single["pbo"] is None
    assert single["deflated_sharpe"]["expected_max_sharpe"] == 0.0  # one trial: the PSR against a Sharpe of 0
    short = search_evidence(returns[:21], [0.1, 0.0, -0.1], rng.normal(0, 1, (21, 3)))
    assert short["pbo"]["n_blocks"] == 10 and short["pbo"]["splits"] == math.comb(10, 5)  # 21 bars: 10 blocks
    assert search_evidence(returns[:3], [0.1, 0.0], rng.normal(0, 1, (3, 2)))["pbo"] is None  # too few bars
    gappy = rng.normal(0, 1, (40, 2))
    gappy[:10, 1] = np.nan  # a trial without the first bars: only the common bars count
    assert search_evidence(returns, [0.1, 0.0], gappy)["pbo"]["n_blocks"] == 14
    silent = search_evidence(np.zeros(500), [0.0, 0.2])  # the winner never trades
    assert silent["deflated_sharpe"]["probability"] == 0.0 and "no deflated Sharpe ratio" in (
        silent["deflated_sharpe"]["note"])
    with pytest.raises(ValueError, match="trial_sharpes"):
        search_evidence(returns, [])
