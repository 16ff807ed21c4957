"""The serving benchmark's framework floor: BentoML with the service's configuration and request schema, whose
/predict returns a constant answer (no API key, no features, no model). What it costs per request is what
BentoML itself costs (ASGI middleware: OpenTelemetry, metrics, timeout, context; pydantic I/O; the hop to the
API's worker thread), which no tuning of the service's own code can remove.

    bentoml serve benchmarks.bento_floor:FloorService --port 3998
"""

from __future__ import annotations

import gc
from typing import Any

import bentoml

from aicash.serving.schemas import Prediction, PredictRequest
from aicash.settings import load_settings
from bentos.wiring import service_config

ANSWER = Prediction(
    signal="HOLD", confidence=0.5, probabilities={"SELL": 0.25, "HOLD": 0.5, "BUY": 0.25}, model_version="floor",
    model_status="production", composite_score=0.0, latency_ms=0.0, request_id="floor",
)


@bentoml.service(**service_config(load_settings()))
class FloorService:
    def __init__(self) -> None:
        gc.collect()
        gc.freeze()

    @bentoml.api(route="/predict", input_spec=PredictRequest)
    def predict(
        self, symbol: str, indicators: Any, timeframe: str, request_id: str | None, ctx: bentoml.Context
    ) -> Prediction:
        return ANSWER
