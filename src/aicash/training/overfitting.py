"""How much of a backtest's edge survives the search that found it.

- `deflated_sharpe_ratio`: the probability that the true Sharpe ratio of the selected strategy is above the best one
  expected by luck among `n_trials` (Bailey & López de Prado, "The Deflated Sharpe Ratio", 2014): the Probabilistic
  Sharpe Ratio against the expected maximum of `n_trials` Sharpe ratios with the trials' variance, corrected for the
  returns' skewness and kurtosis.
- `probability_of_backtest_overfitting`: combinatorially symmetric cross-validation (Bailey, Borwein, López de Prado
  & Zhu, "The Probability of Backtest Overfitting", 2015): over every split of the blocks into halves, how often the
  configuration that is best in sample ranks below the median out of sample.

Sharpe ratios here are per period (not annualized), as the papers compute them. `search_evidence` gathers both
for a search (or a single run, one trial) as metrics.json's `search` block reports them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

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
    contiguous blocks (even); performance is the Sharpe ratio on each half.

    Vectorised: each half's Sharpe ratios come from per-block sums, sums of squares and counts, so the
    C(16, 8) = 12,870 splits of a 16-block search cost a few matrix products rather than 12,870 copies."""
    matrix = np.asarray(block_returns, dtype=float)
    if matrix.ndim != 2 or matrix.shape[1] < 2:
        raise ValueError("block_returns: a T x N matrix with at least two configurations (N >= 2) is needed")
    if n_blocks < 2 or n_blocks % 2:
        raise ValueError(f"n_blocks must be even and at least 2, got {n_blocks}")
    if matrix.shape[0] < 2 * n_blocks:
        raise ValueError(f"block_returns: {matrix.shape[0]} periods are too few for {n_blocks} blocks of 2 or more")
    blocks = np.array_split(matrix, n_blocks)
    sums = np.stack([b.sum(axis=0) for b in blocks])  # n_blocks x N
    squares = np.stack([(b**2).sum(axis=0) for b in blocks])
    counts = np.array([len(b) for b in blocks], dtype=float)
    chosen = np.zeros((math.comb(n_blocks, n_blocks // 2), n_blocks))  # one row per split: 1 = in sample
    for row, picked in enumerate(combinations(range(n_blocks), n_blocks // 2)):
        chosen[row, list(picked)] = 1.0
    inside = _half_sharpe(chosen @ sums, chosen @ squares, chosen @ counts)
    outside = _half_sharpe((1 - chosen) @ sums, (1 - chosen) @ squares, (1 - chosen) @ counts)
    best = np.argmax(inside, axis=1)
    best_out = outside[np.arange(len(best)), best][:, None]
    # rank (1-based, ties averaged as scipy's rankdata) of the in-sample best out of sample, relative: / (N + 1)
    n_trials = matrix.shape[1]
    rank = ((outside < best_out).sum(axis=1) + ((outside == best_out).sum(axis=1) + 1) / 2) / (n_trials + 1)
    values = np.log(rank / (1 - rank))
    return BacktestOverfitting(float(np.mean(values <= 0)), tuple(values.tolist()), len(values), n_trials)


def _half_sharpe(sums: np.ndarray, squares: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per split and configuration, the Sharpe ratio (ddof=1) from sums, sums of squares and counts; 0 when the
    returns are constant."""
    n = counts[:, None]
    mean = sums / n
    variance = np.maximum(squares - sums * mean, 0.0) / (n - 1)
    std = np.sqrt(variance)
    # a variance at rounding level of the squares is a constant series
    flat = variance <= 1e-12 * np.maximum(squares / n, np.finfo(float).tiny)
    return np.divide(mean, std, out=np.zeros_like(mean), where=~flat)


def search_evidence(winner_returns: np.ndarray, trial_sharpes: Sequence[float] | np.ndarray,
                    trial_returns: np.ndarray | None = None, n_blocks: int = 16) -> dict[str, Any]:
    """The statistics of metrics.json's `search` block: how many trials, the variance of their Sharpe ratios, the
    winner's deflated Sharpe ratio and, with two or more trials' returns, the probability of backtest overfitting.

    `winner_returns`: the selected configuration's per-bar returns after costs; `trial_sharpes`: every trial's
    per-period Sharpe ratio (the winner's included); `trial_returns`: T x N per-bar returns of the N trials on
    the same bars (rows with a missing value are dropped). With fewer than 2 x `n_blocks` bars, PBO uses the most
    blocks (even) that fit; null with one trial or too few bars. A winner whose returns are constant (it never
    trades) has no Sharpe ratio: DSR 0 with a note.
    """
    sharpes = np.asarray(trial_sharpes, dtype=float).ravel()
    if sharpes.size < 1:
        raise ValueError("trial_sharpes: one per-period Sharpe ratio per trial is needed (the winner's included)")
    finite = sharpes[np.isfinite(sharpes)]
    variance = float(np.var(finite, ddof=1)) if finite.size > 1 else 0.0
    return {
        "trials": int(sharpes.size),
        "sharpe_variance": variance,
        "deflated_sharpe": _deflated_sharpe_evidence(winner_returns, int(sharpes.size), variance),
        "pbo": _pbo_evidence(trial_returns, n_blocks),
    }


def _deflated_sharpe_evidence(returns: np.ndarray, n_trials: int, variance: float) -> dict[str, Any]:
    values = np.asarray(returns, dtype=float).ravel()
    values = values[np.isfinite(values)]
    try:
        return asdict(deflated_sharpe_ratio(values, n_trials, variance))
    except ValueError as error:  # constant returns (no trade), too few bars
        return {"probability": 0.0, "sharpe": 0.0, "expected_max_sharpe": expected_max_sharpe(n_trials, variance),
                "n_trials": n_trials, "observations": int(values.size), "skewness": None, "kurtosis": None,
                "note": f"no deflated Sharpe ratio: {error}"}


def _pbo_evidence(trial_returns: np.ndarray | None, n_blocks: int) -> dict[str, Any] | None:
    if trial_returns is None:
        return None
    matrix = np.asarray(trial_returns, dtype=float)
    if matrix.ndim != 2 or matrix.shape[1] < 2:
        return None
    matrix = matrix[np.isfinite(matrix).all(axis=1)]
    blocks = min(n_blocks, matrix.shape[0] // 2) // 2 * 2  # the most (even) blocks of 2 or more bars
    if blocks < 2:
        return None
    pbo = probability_of_backtest_overfitting(matrix, blocks)
    return {"probability": pbo.probability, "splits": pbo.splits, "n_trials": pbo.n_trials, "n_blocks": blocks}
