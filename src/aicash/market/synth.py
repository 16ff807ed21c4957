"""Synthetic candles for scale tests: geometric Brownian motion with Markov regime switches.

Each symbol walks through calm, up-trending, down-trending and volatile regimes; each bar's open is the previous close,
high and low extend beyond the body by a noise term scaled to the regime's volatility, and volume rises
with volatility. Vectorised: millions of bars take seconds.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

# (drift per bar, volatility per bar) of each regime, and the chance of staying in it each bar.
REGIMES = np.array([[0.0, 0.0008], [0.0002, 0.0012], [-0.0002, 0.0012], [0.0, 0.0030]])
STAY_PROBABILITY = 0.995


def synth_symbol(
    bars: int, rng: np.random.Generator, start: pd.Timestamp, step: pd.Timedelta, price: float = 1.0
) -> pd.DataFrame:
    """One symbol's candles (ts, open, high, low, close, volume)."""
    switches = rng.random(bars) > STAY_PROBABILITY
    jumps = rng.integers(1, len(REGIMES), size=bars)
    regime = np.cumsum(np.where(switches, jumps, 0)) % len(REGIMES)
    drift, vol = REGIMES[regime, 0], REGIMES[regime, 1]
    log_ret = drift - 0.5 * vol**2 + vol * rng.standard_normal(bars)
    close = price * np.exp(np.cumsum(log_ret))
    open_ = np.r_[price, close[:-1]]
    body_hi, body_lo = np.maximum(open_, close), np.minimum(open_, close)
    high = body_hi * np.exp(np.abs(rng.standard_normal(bars)) * vol * 0.5)
    low = body_lo * np.exp(-np.abs(rng.standard_normal(bars)) * vol * 0.5)
    volume = np.round(rng.lognormal(mean=7.0, sigma=0.4, size=bars) * (vol / REGIMES[0, 1]))
    ts = pd.date_range(start, periods=bars, freq=step, tz="UTC")
    return pd.DataFrame({"ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume})


def synth_universe(
    symbols: int, bars: int, seed: int, timeframe_step: pd.Timedelta, start: str = "2020-01-01"
) -> Iterator[tuple[str, pd.DataFrame]]:
    """(symbol, candles) for `symbols` synthetic symbols named SYN001, SYN002, ...; deterministic per seed."""
    rng = np.random.default_rng(seed)
    for i in range(symbols):
        price = float(rng.uniform(0.5, 200.0))
        yield f"SYN{i + 1:03d}", synth_symbol(bars, rng, pd.Timestamp(start, tz="UTC"), timeframe_step, price)


def planted_market(bars: int, strength: float, seed: int, lag: int = 10, sigma: float = 0.002,
                   symbol: str = "PLANT", start: str = "2021-01-01") -> pd.DataFrame:
    """Hourly candles whose log returns follow r_t = strength * r_{t-lag} + noise (an AR process at lag `lag`).

    `strength` 0 is a random walk (no edge anywhere); the larger it is, the more of each return the bar `lag` bars
    earlier gives away. The window's history holds it (a window reaches back past `lag` bars); the decision bar's
    slow indicators (EMA and MACD ratios) carry only part of it. Deterministic per seed; columns symbol, timeframe,
    ts, OHLCV.
    """
    if not 0.0 <= strength < 1.0:
        raise ValueError(f"strength must be in [0, 1), got {strength}")
    if bars <= lag:
        raise ValueError(f"bars ({bars}) must exceed lag ({lag})")
    rng = np.random.default_rng(seed)
    noise = sigma * rng.standard_normal(bars)
    returns = noise.copy()
    for t in range(lag, bars):
        returns[t] += strength * returns[t - lag]
    close = 1.1 * np.exp(np.cumsum(returns))
    open_ = np.r_[1.1, close[:-1]]
    high = np.maximum(open_, close) * np.exp(np.abs(rng.standard_normal(bars)) * sigma * 0.5)
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.standard_normal(bars)) * sigma * 0.5)
    ts = pd.date_range(start, periods=bars, freq="1h", tz="UTC")
    return pd.DataFrame({"symbol": symbol, "timeframe": "1h", "ts": ts, "open": open_, "high": high, "low": low,
                         "close": close, "volume": rng.lognormal(7.0, 0.4, bars).round()})
