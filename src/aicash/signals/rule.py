"""The weighted-indicator rule signal: each indicator votes in [-1, 1]; weights combine the votes.

A positive composite score leans BUY, a negative one SELL. Components use indicator values only (the same
fields the frontend sends), so the score can be computed for any row of the feature set or any request.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import numpy as np
import pandas as pd

COMPONENTS: tuple[str, ...] = ("rsi", "adx_trend", "ema_cross", "macd", "bollinger", "stochastic")
DEFAULT_WEIGHTS = MappingProxyType(dict.fromkeys(COMPONENTS, 1.0))
DEFAULT_THRESHOLD = 0.2
SIGNALS = ("SELL", "HOLD", "BUY")  # class order of every model: index 0 = down, 1 = flat, 2 = up


def component_votes(ind: pd.DataFrame) -> pd.DataFrame:
    """Each component's vote in [-1, 1] per row of indicator values."""
    atr = ind["atr_value"].where(ind["atr_value"] > 0, np.nan)
    trend = np.tanh((ind["ema_12"] - ind["ema_26"]) / atr)
    votes = pd.DataFrame(
        {
            "rsi": ((50.0 - ind["rsi_value"]) / 20.0).clip(-1, 1),  # oversold -> buy
            "adx_trend": np.sign(trend) * (ind["adx_value"] / 50.0).clip(0, 1),  # strong trend -> follow it
            "ema_cross": trend,
            "macd": np.tanh(ind["macd_histogram"] / atr * 4.0),
            "bollinger": ((0.5 - ind["bb_percent_b"]) * 2.0).clip(-1, 1),  # near lower band -> buy
            "stochastic": ((50.0 - ind["stoch_k"]) / 50.0).clip(-1, 1),
        },
        index=ind.index,
    )
    return votes.fillna(0.0)


def composite_score(ind: pd.DataFrame, weights: Mapping[str, float] = DEFAULT_WEIGHTS) -> pd.Series:
    """Weighted mean of the votes, in [-1, 1]; unknown weight names are an error."""
    unknown = set(weights) - set(COMPONENTS)
    if unknown:
        raise ValueError(f"unknown signal weights {sorted(unknown)}; known: {', '.join(COMPONENTS)}")
    w = np.array([float(weights.get(c, 0.0)) for c in COMPONENTS])
    total = np.abs(w).sum()
    if total == 0:
        return pd.Series(0.0, index=ind.index)
    return pd.Series(component_votes(ind)[list(COMPONENTS)].to_numpy() @ w / total, index=ind.index)


def rule_signal(score: pd.Series, threshold: float = DEFAULT_THRESHOLD) -> pd.Series:
    """Class index per row: 2 = BUY above the threshold, 0 = SELL below minus it, 1 = HOLD."""
    return pd.Series(np.where(score > threshold, 2, np.where(score < -threshold, 0, 1)), index=score.index)
