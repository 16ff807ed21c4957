"""A vectorised backtest of the rule signal: hold the signal's position for one bar, pay a cost on each change.

At the close of bar t the rule signal (BUY, HOLD, SELL) sets the position (+1, 0, -1) held until the close of
bar t+1, which earns position × the next bar's log return, minus `cost_bps` per unit of position change.
Rows are bars of one or more symbols, sorted by symbol and time; every symbol starts flat.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from aicash.signals.rule import composite_score, rule_signal

YEAR = pd.Timedelta(days=365.25)


def add_forward_returns(candles: pd.DataFrame) -> pd.DataFrame:
    """`fwd_return`: log return from this bar's close to the next bar's, per symbol (NaN on a symbol's last bar)."""
    keys = [k for k in ("symbol", "timeframe") if k in candles.columns]
    close = candles["close"].astype(float)
    nxt = close.groupby([candles[k] for k in keys]).shift(-1) if keys else close.shift(-1)
    return candles.assign(fwd_return=np.log(nxt / close))


def bars_per_year(frame: pd.DataFrame) -> float:
    """Bars per year as observed (median over symbols), so gaps such as FX weekends count correctly."""
    rates = []
    for _, group in frame.groupby("symbol") if "symbol" in frame else [(None, frame)]:
        span = group["ts"].iloc[-1] - group["ts"].iloc[0]
        if len(group) > 1 and span > pd.Timedelta(0):
            rates.append((len(group) - 1) / (span / YEAR))
    return float(np.median(rates)) if rates else 1.0


def positions(frame: pd.DataFrame, weights: Mapping[str, float], threshold: float) -> np.ndarray:
    """-1, 0 or +1 per row from the rule signal with `weights`."""
    return rule_signal(composite_score(frame, weights), threshold).to_numpy() - 1


def performance(
    frame: pd.DataFrame, pos: np.ndarray, *, cost_bps: float, periods_per_year: float
) -> dict[str, Any]:
    """Sharpe (annualised, after cost), return, hit rate, exposure and trade count of the positions in `frame`."""
    fwd = frame["fwd_return"].to_numpy(dtype=float)
    symbol = frame["symbol"].to_numpy() if "symbol" in frame else np.zeros(len(frame))
    prev = np.r_[0, pos[:-1]]
    prev[np.r_[True, symbol[1:] != symbol[:-1]]] = 0  # each symbol starts flat
    changes = np.abs(pos - prev)
    pnl = pos * fwd - changes * cost_bps / 1e4
    active = pos != 0
    std = pnl.std()
    return {
        "sharpe": float(pnl.mean() / std * np.sqrt(periods_per_year)) if std > 0 else 0.0,
        "total_log_return": float(pnl.sum()),
        "mean_bps_per_bar": float(pnl.mean() * 1e4),
        "hit_rate": float((pos[active] * fwd[active] > 0).mean()) if active.any() else 0.0,
        "exposure": float(active.mean()),
        "trades": int((changes > 0).sum()),
        "rows": len(frame),
    }
