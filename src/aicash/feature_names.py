"""The one list of feature names (`INDICATOR_COLUMNS`, with what each means) and the candle columns, apart from
the TA-Lib code that computes them so that the registry, the API schema and the CLI can name the features
without importing pandas or TA-Lib. `aicash.indicators` re-exports them."""

from __future__ import annotations

from types import MappingProxyType

INDICATOR_DESCRIPTIONS = MappingProxyType(
    {
        "rsi_value": "Relative Strength Index, 14 bars (0-100)",
        "adx_value": "Average Directional Index, 14 bars (0-100)",
        "ema_12": "Exponential moving average of close, 12 bars",
        "ema_26": "Exponential moving average of close, 26 bars",
        "ema_50": "Exponential moving average of close, 50 bars",
        "macd_line": "MACD line (EMA 12 - EMA 26)",
        "macd_signal": "MACD signal line (EMA 9 of the MACD line)",
        "macd_histogram": "MACD line - signal line",
        "bb_upper": "Bollinger upper band (20 bars, 2 standard deviations)",
        "bb_lower": "Bollinger lower band (20 bars, 2 standard deviations)",
        "bb_percent_b": "Position of close within the Bollinger bands (0 = lower, 1 = upper)",
        "atr_value": "Average True Range, 14 bars",
        "stoch_k": "Stochastic %K (14, 3)",
        "stoch_d": "Stochastic %D (3-bar mean of %K)",
        "log_return": "Log return of close over one bar",
        "volatility_20": "Standard deviation of log returns over 20 bars",
    }
)
INDICATOR_COLUMNS: tuple[str, ...] = tuple(INDICATOR_DESCRIPTIONS)
OHLCV_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
