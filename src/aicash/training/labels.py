"""Labels: the direction of the next `horizon` bars' log return, flat inside a volatility band.

Class order is the platform's (`aicash.signals.rule.SIGNALS`): 0 = down (SELL), 1 = flat (HOLD), 2 = up (BUY).
"""

from __future__ import annotations

import numpy as np

DOWN, FLAT, UP = 0, 1, 2
NO_LABEL = -1  # the last `horizon` bars of a series: their future is unknown


def horizon_log_returns(close: np.ndarray, horizon: int) -> np.ndarray:
    """log(close[t + horizon] / close[t]) per bar of one series sorted by time; NaN past the end."""
    close = np.asarray(close, dtype=np.float64)
    out = np.full(close.shape, np.nan)
    if horizon < len(close):
        out[:-horizon] = np.log(close[horizon:] / close[:-horizon])
    return out


def direction_labels(
    returns: np.ndarray, volatility: np.ndarray, horizon: int, flat_threshold: float
) -> np.ndarray:
    """UP when the return exceeds flat_threshold x volatility x sqrt(horizon), DOWN below minus that, else FLAT.

    `volatility` is the per-bar volatility known at the decision bar (volatility_20), so the band scales with
    the horizon like a random walk's spread. NaN returns or volatility give NO_LABEL.
    """
    returns = np.asarray(returns, dtype=np.float64)
    band = flat_threshold * np.asarray(volatility, dtype=np.float64) * np.sqrt(horizon)
    labels = np.where(returns > band, UP, np.where(returns < -band, DOWN, FLAT))
    return np.where(np.isnan(returns) | np.isnan(band), NO_LABEL, labels).astype(np.int64)
