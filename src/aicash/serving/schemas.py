"""The inference API's JSON schemas (pydantic): the frontend's payload, exactly as it sends it.

Bounds reject values no real market produces; NaN and Infinity are refused; unknown fields are errors
that name the field.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from aicash.indicators import INDICATOR_COLUMNS, INDICATOR_DESCRIPTIONS
from aicash.market.candles import SYMBOL_PATTERN, TIMEFRAMES

PRICE = (0.0, 1e9)
_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "rsi_value": (0, 100), "adx_value": (0, 100), "stoch_k": (0, 100), "stoch_d": (0, 100),
    "ema_12": PRICE, "ema_26": PRICE, "ema_50": PRICE, "bb_upper": PRICE, "bb_lower": PRICE,
    "atr_value": PRICE, "volatility_20": (0, 10), "log_return": (-5, 5), "bb_percent_b": (-100, 100),
    "macd_line": (-1e9, 1e9), "macd_signal": (-1e9, 1e9), "macd_histogram": (-1e9, 1e9),
}
STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=True)

Symbol = Annotated[str, Field(pattern=SYMBOL_PATTERN.pattern, max_length=32, examples=["EURUSD"],
                              description="Upper-case symbol: 1-32 of A-Z, 0-9, '.', '_', '-'.")]
Timeframe = Literal[tuple(TIMEFRAMES)]  # type: ignore[valid-type]


def _indicator_field(name: str) -> tuple[type, object]:
    low, high = _BOUNDS[name]
    return (float | None, Field(default=None, ge=low, le=high, description=INDICATOR_DESCRIPTIONS[name]))


Indicators = create_model(  # type: ignore[call-overload]
    "Indicators",
    __config__=STRICT,
    __doc__="Indicator values of the latest bar; any subset of the platform's indicator set.",
    **{name: _indicator_field(name) for name in INDICATOR_COLUMNS},
)

EXAMPLE_INPUT = {
    "symbol": "EURUSD",
    "indicators": {"rsi_value": 65, "adx_value": 28, "ema_12": 1.0850, "ema_26": 1.0832, "macd_histogram": 0.0004},
}


class PredictRequest(BaseModel):
    """The frontend's request: a symbol and the latest bar's indicators; the rest comes from the feature store."""

    model_config = ConfigDict(**STRICT, json_schema_extra={"example": EXAMPLE_INPUT})

    symbol: Symbol
    indicators: Indicators = Field(default_factory=Indicators)  # type: ignore[valid-type]
    timeframe: Timeframe = "1h"
    request_id: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$",
                                   description="Routes the request to production or canary deterministically.")


class BatchRequest(BaseModel):
    model_config = STRICT
    requests: list[PredictRequest] = Field(min_length=1, max_length=256)


class Candle(BaseModel):
    model_config = STRICT
    timestamp: str = Field(max_length=40)
    open: float = Field(gt=0, le=1e9)
    high: float = Field(gt=0, le=1e9)
    low: float = Field(gt=0, le=1e9)
    close: float = Field(gt=0, le=1e9)
    volume: float = Field(ge=0, le=1e15)


class IndicatorsRequest(BaseModel):
    """Candles in time order; the answer holds the indicators for each bar past the warm-up."""

    model_config = STRICT
    candles: list[Candle] = Field(min_length=1, max_length=5000)


Signal = Literal["SELL", "HOLD", "BUY"]


class Prediction(BaseModel):
    signal: Signal
    confidence: float
    probabilities: dict[str, float]
    model_version: str
    model_status: str = Field(description="Registry status; a forced promotion is labelled as such.")
    composite_score: float = Field(description="Weighted-indicator rule score in [-1, 1].")
    latency_ms: float
    request_id: str
    cached: bool = False
