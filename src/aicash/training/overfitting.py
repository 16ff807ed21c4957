"""How much of a backtest's edge survives the search that found it.

- `deflated_sharpe_ratio`: the probability that the true Sharpe ratio of the selected strategy is above the best one
  expected by luck among `n_trials` (Bailey & López de Prado, "The Deflated Sharpe Ratio", 2014): the Probabilistic
  Sharpe Ratio against the expected maximum of `n_trials` Sharpe ratios with the trials' variance, corrected for the
  returns' skewness and kurtosis.
- `probability_of_backtest_overfitting`: combinatorially symmetric cross-validation (Bailey, Borwein, López de Prado
  & Zhu, "The Probability of Backtest Overfitting", 2015): over every split of the blocks into halves, how often the
  configuration that is best in sample ranks below the median out of sample.

Sharpe ratios here are per period (not annualized), as the papers compute them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import stats

EULER_GAMMA = 0.5772156649015329


@dataclass(frozen=True)
class DeflatedSharpe:
    """The deflated Sharpe ratio and the figures behind it (per period)."""

    probability: float  # DSR: P(true Sharpe > the expected best of n_trials by luck)
    sharpe: float
    expected_max_sharpe: float  # SR0: the best Sharpe ratio n_trials trials give by luck
    n_trials: int
    observations: int
    skewness: float
    kurtosis: float  # not excess: 3 for normal returns


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """E[max SR] over `n_trials` independent trials whose Sharpe ratios have variance `sharpe_variance` (and a true
    Sharpe ratio of 0); 0 for a single trial, which is not a search."""
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    if n_trials == 1:
        return 0.0
    quantiles = ((1 - EULER_GAMMA) * stats.norm.ppf(1 - 1 / n_trials)
                 + EULER_GAMMA * stats.norm.ppf(1 - 1 / (n_trials * math.e)))
    return float(math.sqrt(max(sharpe_variance, 0.0)) * quantiles)


def probabilistic_sharpe_ratio(sharpe: float, benchmark: float, observations: int, skewness: float,
                               kurtosis: float) -> float:
    """P(true Sharpe > `benchmark`) for an estimate over `observations` returns with that skewness and kurtosis."""
    if observations < 2:
        raise ValueError(f"observations must be at least 2, got {observations}")
    spread = 1 - skewness * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if spread <= 0:
        raise ValueError(f"the returns' moments give no valid Sharpe ratio spread ({spread:.3g})")
    return float(stats.norm.cdf((sharpe - benchmark) * math.sqrt(observations - 1) / math.sqrt(spread)))


def deflated_sharpe_ratio(returns: np.ndarray, n_trials: int, sharpe_variance: float) -> DeflatedSharpe:
    """The DSR of the selected configuration's per-period `returns` (after costs), found among `n_trials` whose
    per-period Sharpe ratios have variance `sharpe_variance`."""
    values = np.asarray(returns, dtype=float)
    values = values[np.isfinite(values)]
    if values.size < 2 or values.std(ddof=1) == 0:
        raise ValueError("returns: at least two finite, not all equal, values are needed for a Sharpe ratio")
    sharpe = float(values.mean() / values.std(ddof=1))
    skewness = float(stats.skew(values))
    kurtosis = float(stats.kurtosis(values, fisher=False))
    benchmark = expected_max_sharpe(n_trials, sharpe_variance)
    probability = probabilistic_sharpe_ratio(sharpe, benchmark, values.size, skewness, kurtosis)
    return DeflatedSharpe(probability, sharpe, benchmark, n_trials, int(values.size), skewness, kurtosis)


@dataclass(frozen=True)
class BacktestOverfitting:
    """PBO and the distribution behind it."""

    probability: float  # share of splits where the in-sample best is below the out-of-sample median
    logits: tuple[float, ...]  # one per split: log(w / (1 - w)) of the in-sample best's out-of-sample rank w
    splits: int
    n_trials: int


def probability_of_backtest_overfitting(block_returns: np.ndarray, n_blocks: int = 16) -> BacktestOverfitting:
    """CSCV over a T x N matrix of per-period returns of N configurations (rows in time order), cut into `n_blocks`
    contiguous blocks (even); performance is the Sharpe ratio on each half."""
    matrix = np.asarray(block_returns, dtype=float)
    if matrix.ndim != 2 or matrix.shape[1] < 2:
        raise ValueError("block_returns: a T x N matrix with at least two configurations (N >= 2) is needed")
    if n_blocks < 2 or n_blocks % 2:
        raise ValueError(f"n_blocks must be even and at least 2, got {n_blocks}")
    if matrix.shape[0] < 2 * n_blocks:
        raise ValueError(f"block_returns: {matrix.shape[0]} periods are too few for {n_blocks} blocks of 2 or more")
    blocks = np.array_split(matrix, n_blocks)
    n_trials = matrix.shape[1]
    logits = []
    for chosen in combinations(range(n_blocks), n_blocks // 2):
        inside = np.vstack([blocks[i] for i in chosen])
        outside = np.vstack([blocks[i] for i in range(n_blocks) if i not in chosen])
        best = int(np.argmax(_sharpe(inside)))
        # relative rank of the in-sample best out of sample, in (0, 1): rank / (N + 1)
        rank = float(stats.rankdata(_sharpe(outside))[best]) / (n_trials + 1)
        logits.append(math.log(rank / (1 - rank)))
    values = np.array(logits)
    return BacktestOverfitting(float(np.mean(values <= 0)), tuple(values.tolist()), len(logits), n_trials)


def _sharpe(returns: np.ndarray) -> np.ndarray:
    std = returns.std(axis=0, ddof=1)
    return np.divide(returns.mean(axis=0), std, out=np.zeros(returns.shape[1]), where=std > 0)
