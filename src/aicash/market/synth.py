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
