"""The weighted-indicator rule signal: each indicator votes in [-1, 1]; weights combine the votes.

A positive composite score leans BUY, a negative one SELL. Components use indicator values only (the same
fields the frontend sends), so the score can be computed for any row of the feature set or any request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import numpy as np
import pandas as pd

COMPONENTS: tuple[str, ...] = ("rsi", "adx_trend", "ema_cross", "macd", "bollinger", "stochastic")
DEFAULT_WEIGHTS = MappingProxyType(dict.fromkeys(COMPONENTS, 1.0))
DEFAULT_THRESHOLD = 0.2
SIGNALS = ("SELL", "HOLD", "BUY")  # class order of every model: index 0 = down, 1 = flat, 2 = up


def _votes(column: Callable[[str], np.ndarray]) -> np.ndarray:
    """(rows, len(COMPONENTS)) votes from the indicator columns, computed on plain arrays: the serving hot path
    scores one row per request, where pandas' per-operation overhead would cost milliseconds."""
    with np.errstate(divide="ignore", invalid="ignore"):
        atr = column("atr_value")
        atr = np.where(atr > 0, atr, np.nan)
        trend = np.tanh((column("ema_12") - column("ema_26")) / atr)
        votes = np.column_stack([
            np.clip((50.0 - column("rsi_value")) / 20.0, -1, 1),  # oversold -> buy
            np.sign(trend) * np.clip(column("adx_value") / 50.0, 0, 1),  # strong trend -> follow it
            trend,  # ema_cross
            np.tanh(column("macd_histogram") / atr * 4.0),  # macd
            np.clip((0.5 - column("bb_percent_b")) * 2.0, -1, 1),  # bollinger: near lower band -> buy
            np.clip((50.0 - column("stoch_k")) / 50.0, -1, 1),  # stochastic
        ])
    return np.where(np.isnan(votes), 0.0, votes)


def _weight_vector(weights: Mapping[str, float]) -> np.ndarray:
    """Weights in COMPONENTS order, normalised by their absolute sum (all zeros when they sum to zero)."""
    unknown = set(weights) - set(COMPONENTS)
    if unknown:
        raise ValueError(f"unknown signal weights {sorted(unknown)}; known: {', '.join(COMPONENTS)}")
    w = np.array([float(weights.get(c, 0.0)) for c in COMPONENTS])
    total = np.abs(w).sum()
    return w / total if total else w


def component_votes(ind: pd.DataFrame) -> pd.DataFrame:
    """Each component's vote in [-1, 1] per row of indicator values."""
    votes = _votes(lambda name: ind[name].to_numpy(dtype=float, na_value=np.nan))
    return pd.DataFrame(votes, columns=list(COMPONENTS), index=ind.index)


def composite_score(ind: pd.DataFrame, weights: Mapping[str, float] = DEFAULT_WEIGHTS) -> pd.Series:
    """Weighted mean of the votes, in [-1, 1]; unknown weight names are an error."""
    w = _weight_vector(weights)
    return pd.Series(_votes(lambda name: ind[name].to_numpy(dtype=float, na_value=np.nan)) @ w, index=ind.index)


def composite_scores(rows: Sequence[Mapping[str, float]], weights: Mapping[str, float] = DEFAULT_WEIGHTS) -> np.ndarray:
    """`composite_score` of plain rows (indicator name -> value), without a DataFrame: the service's hot path."""
    w = _weight_vector(weights)
    return _votes(lambda name: np.array([row[name] for row in rows], dtype=float)) @ w


def rule_signal(score: pd.Series, threshold: float = DEFAULT_THRESHOLD) -> pd.Series:
    """Class index per row: 2 = BUY above the threshold, 0 = SELL below minus it, 1 = HOLD."""
    return pd.Series(np.where(score > threshold, 2, np.where(score < -threshold, 0, 1)), index=score.index)
