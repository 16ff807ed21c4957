"""The bar lengths the platform accepts, by name (`aicash.market.candles.TIMEFRAMES` gives their durations)."""

from __future__ import annotations

TIMEFRAME_NAMES: tuple[str, ...] = ("1m", "5m", "15m", "30m", "1h", "4h", "1d", "1w")
