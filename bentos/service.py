"""The aicash inference service: the model registry's production and canary models behind the frontend's API.

`bentoml serve` (or `aicash serve`) runs it; `bentoml build -f bentos/bentofile.yaml` packages it.
POST endpoints are BentoML APIs (typed, in the OpenAPI at /docs.json); the GET endpoints (/health, /weights,
/models) come from a FastAPI app mounted on the service. BentoML provides /livez, /readyz and /metrics.
"""

from __future__ import annotations

import gc
import logging
import time
import uuid
from typing import Any

import bentoml
import numpy as np
import pandas as pd
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Histogram

from aicash.indicators import INDICATOR_COLUMNS, with_indicators
from aicash.serving.runtime import LoadedModel, describe
from aicash.serving.schemas import EXAMPLE_INPUT, BatchRequest, IndicatorsRequest, Prediction, PredictRequest
from aicash.settings import load_settings
from aicash.training.artifacts import load_model
from bentos.package import bundled_model_dir
from bentos.security import SecurityMiddleware
from bentos.wiring import build_runtime, security_options, service_config

log = logging.getLogger("aicash.service")
SETTINGS = load_settings()

LATENCY = Histogram(
    "aicash_request_latency_seconds", "Server-side latency per endpoint", ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5),
)
PREDICTIONS = Counter("aicash_predictions_total", "Predictions answered", ["signal", "model_version"])
CACHE_HITS = Counter("aicash_prediction_cache_hits_total", "Predictions answered from the cache")

http_api = FastAPI(title="aicash read endpoints")


def _error(ctx: bentoml.Context, status: int, message: str) -> JSONResponse:
    """A JSON error; BentoML takes an API's status from the context, so it is set there too."""
    ctx.response.status_code = status
    return JSONResponse({"error": message}, status_code=status)


@bentoml.service(**service_config(SETTINGS))
@bentoml.asgi_app(http_api, path="/")
class SignalService:
    """Signals for the frontend from the approved LSTM, with the rule signal's composite score beside them."""

    def __init__(self) -> None:
        self.runtime = build_runtime(SETTINGS)
        if not self.runtime.models and (bundled := bundled_model_dir()) is not None:
            version, folder = bundled  # the registry is unreachable: serve the model the Bento carries
            log.warning("registry unavailable at start; serving the bundled model %s", version)
            self.runtime.models = [LoadedModel(version, "bundled", 100.0, load_model(folder))]
        self.started = time.time()
        # Warm up, then move everything alive now out of the collector's way (see FACTS: GC pauses).
        gc.collect()
        gc.freeze()

    def __is_ready__(self) -> bool:
        """Ready when a model is loaded; a database outage degrades the service but does not stop it."""
        return bool(self.runtime.models)

    @bentoml.on_shutdown
    def flush_prediction_log(self) -> None:
        self.runtime.close()

    # -- POST: BentoML APIs ---------------------------------------------------------------------------------
    @bentoml.api(route="/predict", input_spec=PredictRequest)
    def predict(
        self, symbol: str, indicators: Any, timeframe: str, request_id: str | None, ctx: bentoml.Context
    ) -> Prediction:
        """The frontend's prediction: signal, confidence, probabilities, model version, composite score."""
        with LATENCY.labels("/predict").time():
            request = PredictRequest.model_construct(
                symbol=symbol, indicators=indicators, timeframe=timeframe, request_id=request_id
            )
            return self._predict([request], ctx)

    @bentoml.api(route="/predict/batch", input_spec=BatchRequest)
    def predict_batch(self, requests: list[PredictRequest], ctx: bentoml.Context) -> list[Prediction]:
        """Up to 256 predictions in one call, one forward pass per model."""
        with LATENCY.labels("/predict/batch").time():
            return self._predict(requests, ctx, batch=True)

    @bentoml.api(route="/indicators", input_spec=IndicatorsRequest)
    def indicators(self, candles: list[Any]) -> dict[str, Any]:
        """Indicator values for each bar past the warm-up, computed by the code that builds training features."""
        with LATENCY.labels("/indicators").time():
            frame = pd.DataFrame([c.model_dump() for c in candles])
            frame["ts"] = pd.to_datetime(frame.pop("timestamp"), utc=True, errors="coerce", format="ISO8601")
            values = with_indicators(frame, dropna=False)
            rows = []
            for ts, row in zip(values["ts"], values[list(INDICATOR_COLUMNS)].to_numpy(), strict=True):
                named = zip(INDICATOR_COLUMNS, row, strict=True)
                rows.append({"timestamp": None if pd.isna(ts) else ts.isoformat(),
                             **{k: None if np.isnan(v) else float(v) for k, v in named}})
            return {"indicators": rows, "warmup_bars": int(values[list(INDICATOR_COLUMNS)].isna().any(axis=1).sum())}

    def _predict(self, requests: list[PredictRequest], ctx: bentoml.Context, batch: bool = False) -> Any:
        request_id = ctx.request.headers.get("x-request-id")
        if not batch and requests[0].request_id is None:
            requests = [requests[0].model_copy(update={"request_id": request_id or uuid.uuid4().hex})]
        try:
            answers = self.runtime.predict_many(requests)
        except LookupError as exc:  # unknown symbol, nothing materialized, or no model loaded
            return _error(ctx, 404 if self.runtime.models else 503, str(exc).strip("'\""))
        for answer in answers:
            PREDICTIONS.labels(answer.signal, answer.model_version).inc()
            if answer.cached:
                CACHE_HITS.inc()
        return answers if batch else answers[0]

    # -- GET: mounted FastAPI routes --------------------------------------------------------------------------
    @http_api.get("/health")
    def health(self) -> dict[str, Any]:
        """Liveness plus what is degraded: no model, prediction log behind (database down)."""
        with LATENCY.labels("/health").time():
            plog = self.runtime.prediction_log
            return {
                "status": "ok" if self.runtime.models and (plog is None or plog.healthy) else "degraded",
                "models": self.runtime.split(),
                "prediction_log": None if plog is None else {"healthy": plog.healthy, "pending": plog.pending},
                "uptime_seconds": round(time.time() - self.started, 1),
            }

    @http_api.get("/weights")
    def weights(self) -> dict[str, Any]:
        """The current signal weights of the rule signal."""
        with LATENCY.labels("/weights").time():
            return {"weights": dict(self.runtime.weights)}

    @http_api.get("/models")
    def models(self) -> dict[str, Any]:
        """Loaded versions, their registry status and the traffic split."""
        with LATENCY.labels("/models").time():
            return describe(self.runtime)


SignalService.add_asgi_middleware(SecurityMiddleware, **security_options(SETTINGS))

__all__ = ["EXAMPLE_INPUT", "SignalService"]
