"""Synthetic data with a planted signal: mean-reverting candles, and trades whose outcome follows the RSI vote."""

from __future__ import annotations

import numpy as np
import pandas as pd


def mean_reverting_candles(bars: int, seed: int, symbol: str = "SYNA", kappa: float = 0.05,
                           sigma: float = 0.002) -> pd.DataFrame:
    """An AR(1) log price pulled back to its mean by `kappa` per bar: the contrarian components (RSI first)
    predict the next return; the trend followers do not, so equal weights mostly cancel out."""
    rng = np.random.default_rng(seed)
    x, eps = np.zeros(bars), rng.standard_normal(bars)
    for t in range(1, bars):
        x[t] = x[t - 1] * (1 - kappa) + sigma * eps[t]
    close = 1.1 * np.exp(x)
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * np.exp(np.abs(rng.standard_normal(bars)) * sigma * 0.5)
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.standard_normal(bars)) * sigma * 0.5)
    ts = pd.date_range("2024-01-01", periods=bars, freq="h", tz="UTC")
    return pd.DataFrame({"symbol": symbol, "timeframe": "1h", "ts": ts, "open": open_, "high": high, "low": low,
                         "close": close, "volume": 1000.0})


def rsi_driven_trades(count: int, seed: int) -> pd.DataFrame:
    """Trades with random indicator values at entry whose chance of winning rises when RSI agrees with the side
    (BUY when oversold, SELL when overbought); every other indicator is noise."""
    rng = np.random.default_rng(seed)
    rsi = rng.uniform(10, 90, count)
    side = rng.choice(["BUY", "SELL"], count)
    agree = np.clip((50 - rsi) / 20, -1, 1) * np.where(side == "BUY", 1, -1)
    won = rng.random(count) < 1 / (1 + np.exp(-3.0 * agree))
    entry = 1.10 + rng.normal(0, 0.01, count)
    move = np.where(won, 1, -1) * rng.uniform(0.001, 0.004, count) * np.where(side == "BUY", 1, -1)
    atr = rng.uniform(0.0005, 0.002, count)
    ema_26 = entry + rng.normal(0, 0.002, count)
    return pd.DataFrame({
        "symbol": "EURUSD", "side": side,
        "entry_time": pd.date_range("2023-01-02", periods=count, freq="7h", tz="UTC").strftime("%Y-%m-%d %H:%M"),
        "entry_price": entry.round(5), "exit_price": (entry + move).round(5), "quantity": 10000,
        "rsi_value": rsi.round(2), "adx_value": rng.uniform(10, 50, count).round(2),
        "ema_12": (ema_26 + rng.normal(0, 0.001, count)).round(5), "ema_26": ema_26.round(5),
        "macd_histogram": rng.normal(0, 0.0005, count).round(6), "bb_percent_b": rng.uniform(-0.2, 1.2, count).round(3),
        "atr_value": atr.round(6), "stoch_k": rng.uniform(0, 100, count).round(2),
    })
