"""Small data for the training tests: synthetic markets, a market whose future the indicators give away, and a
tiny training configuration."""

from __future__ import annotations

import numpy as np
import pandas as pd

from aicash.indicators import INDICATOR_COLUMNS, with_indicators
from aicash.market.synth import synth_universe
from aicash.training import TrainingConfig

TINY = TrainingConfig(
    horizon_bars=2, window_bars=8, hidden_size=8, max_epochs=4, patience=2, batch_size=64, n_folds=3,
    learning_rate=1e-2, reference_rows=200,
)


def synth_frame(symbols: int = 2, bars: int = 400, seed: int = 3) -> pd.DataFrame:
    """Candles with indicators of `symbols` synthetic random-walk series (1h bars)."""
    parts = [c.assign(symbol=s, timeframe="1h") for s, c in synth_universe(symbols, bars, seed, pd.Timedelta("1h"))]
    return with_indicators(pd.concat(parts, ignore_index=True))


def predictable_frame(bars: int = 700, seed: int = 0, lag: int = 0, symbol: str = "EASY") -> pd.DataFrame:
    """A series whose next bar follows rsi_value `lag` bars earlier: up when it is > 66, down when < 33, else flat.

    The indicators are made up (not computed from the prices), so the horizon-1 label is a function of the
    window's features: a working pipeline must find it, and one fed shuffled labels must not. With lag > 0 only a
    model that reads the window's history (the LSTM, not the last-bar baselines) can.
    """
    rng = np.random.default_rng(seed)
    rsi = rng.uniform(0, 100, bars)
    driver = np.roll(rsi, lag)
    step = 0.002 * ((driver > 66).astype(float) - (driver < 33).astype(float)) + rng.normal(0, 1e-4, bars)
    close = 1.1 * np.exp(np.r_[0.0, np.cumsum(step[:-1])])
    frame = pd.DataFrame({name: rng.uniform(0.5, 1.5, bars) for name in INDICATOR_COLUMNS})
    frame["rsi_value"] = rsi
    for name in ("ema_12", "ema_26", "ema_50", "bb_upper", "bb_lower"):
        frame[name] = close * rng.uniform(0.99, 1.01, bars)
    for name in ("macd_line", "macd_signal", "macd_histogram", "atr_value"):
        frame[name] = rng.normal(0, 1e-3, bars)
    frame["atr_value"] = frame["atr_value"].abs()
    frame["volatility_20"] = 1e-3  # flat band: |r| < 0.5e-3 at horizon 1
    return frame.assign(
        symbol=symbol, timeframe="1h", ts=pd.date_range("2021-01-01", periods=bars, freq="1h", tz="UTC"), close=close
    )
