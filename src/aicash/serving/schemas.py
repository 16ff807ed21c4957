"""The inference API's JSON schemas (pydantic): the frontend's payload, exactly as it sends it.

Bounds reject values no real market produces; NaN and Infinity are refused; unknown fields are errors
that name the field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model

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
# A request id, from the body's `request_id` or the `X-Request-Id` header: the one rule for both (it is logged to
# `predictions.request_id`, VARCHAR(64)).
RequestId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
_REQUEST_ID = TypeAdapter(RequestId)


def request_id_problem(value: str) -> str | None:
    """Why `value` is not a valid request id (the body's rule), or None when it is."""
    try:
        _REQUEST_ID.validate_python(value)
    except ValidationError as exc:
        return "; ".join(err["msg"] for err in exc.errors())
    return None


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
    timeframe: Timeframe | None = Field(  # type: ignore[valid-type]
        default=None, description="Bar length of the series whose features are read, e.g. 1h. Left out: the "
        "timeframe the answering model was trained on (its training data's series in metrics.json), else 1h.")
    request_id: RequestId | None = Field(
        default=None, description="Routes the request to production or canary deterministically.")


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
    features_as_of: datetime | None = Field(
        default=None, description="Time (ISO 8601, UTC) of the latest bar whose features the prediction used."
    )
    stale: bool = Field(
        default=False,
        description="True when that bar is older than MAX_FEATURE_AGE_BARS bars of its timeframe plus "
        "FEATURE_AGE_GRACE_SECONDS (judged when answering, cached answers too): the signal reflects old data.",
    )

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Prediction:
        """The answer of `fields`, which name every field with a value already of its type (the runtime computes
        them): the instance `model_construct(**fields)` makes, without its pass over each field's aliases and
        defaults (about 1.4 µs against 4.9, on every answer). `fields` becomes the instance's own dict."""
        answer = cls.__new__(cls)
        object.__setattr__(answer, "__dict__", fields)
        object.__setattr__(answer, "__pydantic_fields_set__", set(fields))
        object.__setattr__(answer, "__pydantic_extra__", None)
        object.__setattr__(answer, "__pydantic_private__", None)
        return answer
