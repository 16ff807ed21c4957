"""The serving benchmark's framework floor: BentoML with the service's configuration and request schema, whose
/predict returns a constant answer (no API key, no features, no model). What it costs per request is what
BentoML itself costs (ASGI middleware: OpenTelemetry, metrics, timeout, context; pydantic I/O), which no tuning of
the service's own code can remove. Its /predict is asynchronous like the service's, which answers on the event loop
what it holds in memory (`bentos.dispatch`): a synchronous floor would also pay the hop to BentoML's worker thread
(0.1-0.3 ms per request), which the service no longer pays on most requests.

    bentoml serve benchmarks.bento_floor:FloorService --port 3998

`RuntimeFloorService` is the same floor answering through the service's runtime (metered: POST /meters), dispatched
as the service dispatches it, without the service's security middleware, mounted FastAPI app and metrics: the
attribution benchmark's BentoML host (`benchmarks.bench_attribution`).
"""

from __future__ import annotations

import gc
from typing import Any

import bentoml

from aicash.serving.request_ids import new_request_id
from aicash.serving.schemas import Prediction, PredictRequest
from aicash.settings import load_settings
from benchmarks.attribution_hosts import answer_with, metered, service_runtime
from bentos.dispatch import PredictDispatch
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
    async def predict(
        self, symbol: str, indicators: Any, timeframe: str, request_id: str | None, ctx: bentoml.Context
    ) -> Prediction:
        return ANSWER


@bentoml.service(**service_config(load_settings()))
class RuntimeFloorService:
    def __init__(self) -> None:
        self.runtime = service_runtime()
        self.meters = metered(self.runtime)
        self.dispatch = PredictDispatch(self.runtime)
        gc.collect()
        gc.freeze()

    @bentoml.api(route="/predict", input_spec=PredictRequest)
    async def predict(
        self, symbol: str, indicators: Any, timeframe: str | None, request_id: str | None, ctx: bentoml.Context
    ) -> Prediction:
        request = PredictRequest.model_construct(symbol=symbol, indicators=indicators, timeframe=timeframe,
                                                 request_id=request_id or new_request_id())
        return await self.dispatch(request, lambda: answer_with(self.runtime, request))

    @bentoml.api(route="/meters")
    def meters_now(self) -> dict[str, Any]:
        return {name: meter.reading() for name, meter in self.meters.items()}

    @bentoml.on_shutdown
    def close(self) -> None:
        self.runtime.close()
