"""Technical indicators over OHLCV candles, computed by TA-Lib, vectorised over a whole symbol.

`INDICATOR_COLUMNS` (defined in `aicash.feature_names`, re-exported here) is the one list of feature names: the
feature store, the model, the API schema and the drift report all import it. The names follow the frontend's
payload (`rsi_value`, `adx_value`, `ema_12`, ...).
Every value at bar t depends only on bars up to t (TA-Lib runs its recursions forward from the first bar),
so appending later bars never changes an earlier value.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import talib

from aicash.feature_names import INDICATOR_COLUMNS, INDICATOR_DESCRIPTIONS, OHLCV_COLUMNS  # noqa: F401 - re-exported

# Bars before every indicator is defined (EMA 50 needs 50 closes; the rest need fewer).
WARMUP_BARS = 50
VOLATILITY_WINDOW = 20


def compute_indicators(candles: pd.DataFrame) -> pd.DataFrame:
    """Indicator columns for one symbol's candles (sorted by time), indexed like `candles`.

    Rows inside the warm-up hold NaN; `dropna()` removes them.
    """
    missing = [c for c in ("high", "low", "close") if c not in candles.columns]
    if missing:
        raise ValueError(f"candles lack columns {missing}")
    high = candles["high"].to_numpy(dtype=np.float64)
    low = candles["low"].to_numpy(dtype=np.float64)
    close = candles["close"].to_numpy(dtype=np.float64)

    macd, macd_signal, macd_hist = talib.MACD(close, fastperiod=12, slowperiod=26, signalperiod=9)
    bb_upper, _, bb_lower = talib.BBANDS(close, timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0)
    stoch_k, stoch_d = talib.STOCH(
        high, low, close, fastk_period=14, slowk_period=3, slowk_matype=0, slowd_period=3, slowd_matype=0
    )
    width = bb_upper - bb_lower
    with np.errstate(divide="ignore", invalid="ignore"):
        percent_b = np.where(width > 0, (close - bb_lower) / width, 0.5)
        log_return = np.empty_like(close)
        log_return[0] = np.nan
        log_return[1:] = np.log(close[1:] / close[:-1])
    percent_b[np.isnan(bb_upper)] = np.nan

    out = pd.DataFrame(
        {
            "rsi_value": talib.RSI(close, timeperiod=14),
            "adx_value": talib.ADX(high, low, close, timeperiod=14),
            "ema_12": talib.EMA(close, timeperiod=12),
            "ema_26": talib.EMA(close, timeperiod=26),
            "ema_50": talib.EMA(close, timeperiod=50),
            "macd_line": macd,
            "macd_signal": macd_signal,
            "macd_histogram": macd_hist,
            "bb_upper": bb_upper,
            "bb_lower": bb_lower,
            "bb_percent_b": percent_b,
            "atr_value": talib.ATR(high, low, close, timeperiod=14),
            "stoch_k": stoch_k,
            "stoch_d": stoch_d,
            "log_return": log_return,
            "volatility_20": talib.STDDEV(log_return, timeperiod=VOLATILITY_WINDOW, nbdev=1.0),
        },
        index=candles.index,
    )
    return out[list(INDICATOR_COLUMNS)]


def with_indicators(candles: pd.DataFrame, *, dropna: bool = True) -> pd.DataFrame:
    """Candles with indicator columns appended, computed per (symbol, timeframe) when those columns exist."""
    keys = [k for k in ("symbol", "timeframe") if k in candles.columns]
    if not keys:
        frame = candles.join(compute_indicators(candles))
    else:
        parts = [
            group.join(compute_indicators(group))
            for _, group in candles.sort_values([*keys, "ts"] if "ts" in candles else keys).groupby(
                keys, sort=True
            )
        ]
        frame = pd.concat(parts) if parts else candles.assign(**{c: np.nan for c in INDICATOR_COLUMNS})
    return frame.dropna(subset=list(INDICATOR_COLUMNS)) if dropna else frame
