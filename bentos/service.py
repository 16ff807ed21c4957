"""The aicash inference service: the model registry's production and canary models behind the frontend's API.

`bentoml serve` (or `aicash serve`) runs it; `bentoml build -f bentos/bentofile.yaml` packages it.
POST endpoints are BentoML APIs (typed, in the OpenAPI at /docs.json); the GET endpoints (/health, /weights,
/models) and the admin operations (/train, /training-status, /models/{version}/promote, /models/rollback, admin
keys only) come from a FastAPI app mounted on the service. BentoML provides /livez, /readyz and /metrics.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

import bentoml
import numpy as np
import pandas as pd
import torch
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.exceptions import HTTPException as StarletteHTTPException

from aicash.db.engine import engine_for
from aicash.indicators import INDICATOR_COLUMNS, with_indicators
from aicash.registry import list_models
from aicash.registry.summary import trained_timeframe, version_summary
from aicash.serving.freshness import FeatureAges, StaleFeaturesError
from aicash.serving.outages import is_outage
from aicash.serving.request_ids import new_request_id
from aicash.serving.runtime import (
    FeaturesUnavailableError,
    LoadedModel,
    NoModelLoadedError,
    NotFoundError,
    SignalRuntime,
    describe,
)
from aicash.serving.schemas import (
    EXAMPLE_INPUT,
    BatchRequest,
    IndicatorsRequest,
    Prediction,
    PredictRequest,
    request_id_problem,
)
from aicash.settings import load_settings
from aicash.training.artifact_files import read_metrics
from aicash.training.last_step import LastStepModel
from bentos.admin import VERSION_PATTERN, AdminError, AdminOps, PromoteRequest, RollbackRequest, TrainRequest
from bentos.dispatch import PredictDispatch
from bentos.package import bundled_model
from bentos.process_metrics import WorkerProcessMetrics
from bentos.security import AdminAudit, SecurityMiddleware, actor_of
from bentos.wiring import (
    admin_engine,
    build_runtime,
    features_reachable,
    publish_keys,
    security_options,
    service_config,
    serving_model,
    warm_up,
)

log = logging.getLogger("aicash.service")

LATENCY = Histogram(
    "aicash_request_latency_seconds", "Server-side latency per endpoint", ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5),
)
PREDICTIONS = Counter("aicash_predictions_total", "Predictions answered", ["signal", "model_version"])
CACHE_HITS = Counter("aicash_prediction_cache_hits_total", "Predictions answered from the cache")
# Labelled children looked up once: `labels()` costs a few µs per call, on every prediction.
_PREDICT_LATENCY, _BATCH_LATENCY = LATENCY.labels("/predict"), LATENCY.labels("/predict/batch")
_ANSWERED: dict[tuple[str, str], Any] = {}


def _count(answer: Prediction) -> None:
    """`aicash_predictions_total` (and the cache hits) for one answer."""
    key = (answer.signal, answer.model_version)
    if (counter := _ANSWERED.get(key)) is None:
        counter = _ANSWERED[key] = PREDICTIONS.labels(*key)
    counter.inc()
    if answer.cached:
        CACHE_HITS.inc()

http_api = FastAPI(title="aicash read and admin endpoints")


@http_api.exception_handler(RequestValidationError)
async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """400 naming each bad field (FastAPI's default is 422 with a nested `detail`)."""
    problems = []
    for err in exc.errors()[:10]:
        where = ".".join(str(part) for part in err.get("loc", ()) if part not in {"body"}) or "body"
        problems.append(f"{where}: {err.get('msg', 'invalid')}")
    return JSONResponse({"error": "; ".join(problems)}, status_code=400)


@http_api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """FastAPI's own refusals (unparseable body, unknown route, wrong method) in the service's error format."""
    hints = {400: "send a JSON object (see /docs.json)", 404: "see /docs.json for the routes",
             405: "see /docs.json for the methods"}
    hint = hints.get(exc.status_code, "see /docs.json")
    message = f"{exc.detail} ({request.method} {request.url.path[:200]}): {hint}"
    return JSONResponse({"error": message}, status_code=exc.status_code, headers=getattr(exc, "headers", None))


def _admin_error(exc: AdminError) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)


def _error(ctx: bentoml.Context, status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON error; BentoML takes an API's status from the context, so it is set there too."""
    ctx.response.status_code = status
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class _FeatureAgeCollector:
    """`aicash_feature_age_seconds{symbol,timeframe}` (now minus the latest bar read for the series) and its limit
    `aicash_feature_age_limit_seconds`, for the series the service has read; AicashFeaturesStale compares them."""

    def __init__(self, ages: FeatureAges) -> None:
        self.ages = ages

    def collect(self) -> Any:
        labels = ["symbol", "timeframe"]
        age = GaugeMetricFamily("aicash_feature_age_seconds", "Seconds since the latest bar whose features the "
                                "service read for the series", labels=labels)
        limit = GaugeMetricFamily("aicash_feature_age_limit_seconds", "Age past which the series' features are "
                                  "stale (MAX_FEATURE_AGE_BARS bars plus FEATURE_AGE_GRACE_SECONDS)", labels=labels)
        for series in self.ages.current():
            age.add_metric([series.symbol, series.timeframe], series.age_seconds)
            limit.add_metric([series.symbol, series.timeframe], series.limit_seconds)
        yield age
        yield limit


class _LastStepCollector:
    """`aicash_last_step_windows_total{model_version,path}`: windows a loaded LSTM or GRU answered by the last step
    (`last_step`) or by the full model (`full_model`: a prefix seen for the first time, a given `ema_50`, a latest
    bar that is not finite), read from the models' own counters at scrape time."""

    def __init__(self, runtime: SignalRuntime) -> None:
        self.runtime = runtime

    def collect(self) -> Any:
        windows = CounterMetricFamily("aicash_last_step_windows", "Windows an LSTM or GRU answered by the last step "
                                      "or by the full model", labels=["model_version", "path"])
        for loaded in list(self.runtime.models):
            step = getattr(loaded.model, "predict_windows", None)
            if isinstance(step, LastStepModel):
                windows.add_metric([loaded.version, "last_step"], step.hits)
                windows.add_metric([loaded.version, "full_model"], step.misses)
        yield windows


# BentoML takes the service's options (traffic, CORS origins) when the class is defined: the one read of the
# settings at import. Everything else reads them when the worker builds the service and its middleware.
@bentoml.service(**service_config(load_settings()))
@bentoml.asgi_app(http_api, path="/")
class SignalService:
    """Signals for the frontend from the approved model (any family), with the rule signal's composite score beside
    them."""

    def __init__(self) -> None:
        # One intra-op thread: a worker is sized to one CPU and runs its requests one after another (on its event
        # loop, or a worker thread: `bentos.dispatch`); torch's default of one thread per core would fight over it.
        # (A LightGBM model predicts on one thread too: `load_model` sets it.)
        torch.set_num_threads(1)
        settings = load_settings()
        self.runtime = build_runtime(settings)
        self.dispatch = PredictDispatch(self.runtime)
        if not self.runtime.models and (bundled := bundled_model()) is not None:
            # the registry is unreachable: serve the model (and weights) the Bento carries
            log.warning("registry unavailable at start; serving the bundled model %s", bundled.version)
            model = serving_model(bundled.folder)
            self.runtime.models = [LoadedModel(bundled.version, "bundled", 100.0, model,
                                               timeframe=trained_timeframe(read_metrics(bundled.folder)))]
            if not self.runtime.weights:
                self.runtime.weights = bundled.weights or {}
        publish_keys(settings)
        # its own login (ADMIN_DATABASE_URL, in aicash_training): the service's may not write models or runs
        self.admin = AdminOps(settings, admin_engine(settings), after_change=self._reload_now)
        self.started = time.time()
        self._scrape_time_registry = CollectorRegistry(auto_describe=False)
        self._scrape_time_registry.register(_FeatureAgeCollector(self.runtime.feature_ages))
        self._scrape_time_registry.register(_LastStepCollector(self.runtime))
        # this worker's CPU, memory, files, GC and prediction-log backlog on /metrics
        self.process_metrics = WorkerProcessMetrics(readings={"aicash_prediction_log_pending": (
            "Predictions this worker has answered and not yet written to the database", self._log_pending)})
        # Warm up (open the online store and read through it, run each model), then move everything alive now out
        # of the collector's way (BentoML under load: GC pauses; objects made after the freeze are walked by every
        # full collection).
        warm_up(self.runtime)
        gc.collect()
        gc.freeze()

    def __is_ready__(self) -> bool:
        """Ready when a model is loaded and the feature store has answered since start. A database outage after
        that degrades the service (stale features, keys from the grace cache, the log queued) but keeps it ready;
        a replica started during one stays out of the load balancer until the database answers."""
        return bool(self.runtime.models) and self._features_reachable()

    def _log_pending(self) -> float:
        plog = self.runtime.prediction_log
        return 0.0 if plog is None else float(plog.pending)

    def _features_reachable(self) -> bool:
        return features_reachable(self.runtime)

    def __metrics__(self, content: str) -> str:
        """BentoML's /metrics plus the feature ages and the last step's windows, computed at scrape time (not stored
        metrics: ages grow between reads, and BentoML's multiprocess metric files would keep a value from the last
        read; the windows are the models' own counters)."""
        return content + generate_latest(self._scrape_time_registry).decode()

    @bentoml.on_shutdown
    def flush_prediction_log(self) -> None:
        self.process_metrics.stop()
        self.admin.close()
        self.runtime.close()

    def _reload_now(self) -> list[tuple[str, float]]:
        """After a promotion or rollback: serve the new split here at once (keeps the current one on failure)."""
        self.runtime.reload()
        return self.runtime.split()

    # -- POST: BentoML APIs ---------------------------------------------------------------------------------
    @bentoml.api(route="/predict", input_spec=PredictRequest)
    async def predict(
        self, symbol: str, indicators: Any, timeframe: str | None, request_id: str | None, ctx: bentoml.Context
    ) -> Prediction:
        """The frontend's prediction: signal, confidence, probabilities, model version, composite score. Answered
        on the event loop when the runtime holds everything it needs, else on a worker thread
        (`bentos.dispatch`)."""
        with _PREDICT_LATENCY.time():
            header = ctx.request.headers.get("x-request-id")
            if header is not None and (problem := request_id_problem(header)) is not None:
                return _error(ctx, 400, f"X-Request-Id: {problem}")  # the body's request_id rule
            request = PredictRequest.model_construct(
                symbol=symbol, indicators=indicators, timeframe=timeframe,
                request_id=request_id or header or new_request_id(),
            )
            return await self.dispatch(request, lambda: self._predict([request], ctx))

    @bentoml.api(route="/predict/batch", input_spec=BatchRequest)
    def predict_batch(self, requests: list[PredictRequest], ctx: bentoml.Context) -> list[Prediction]:
        """Up to 256 predictions in one call, one forward pass per model."""
        with _BATCH_LATENCY.time():
            header = ctx.request.headers.get("x-request-id")
            if header is not None and (problem := request_id_problem(header)) is not None:
                return _error(ctx, 400, f"X-Request-Id: {problem}")  # the body's request_id rule
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
        try:
            answers = self.runtime.predict_many(requests)
        except FeaturesUnavailableError as exc:  # an outage, not a bad request: retry
            return _error(ctx, 503, str(exc), {"Retry-After": "5"})
        except StaleFeaturesError as exc:  # REFUSE_STALE_FEATURES: no signal from old bars
            return _error(ctx, 503, str(exc), {"Retry-After": str(exc.retry_after)})
        except NotFoundError as exc:  # unknown symbol, nothing materialized, or no model loaded (not any KeyError)
            return _error(ctx, 503 if isinstance(exc, NoModelLoadedError) else 404, str(exc).strip("'\""))
        for answer in answers:
            _count(answer)
        return answers if batch else answers[0]

    # -- GET: mounted FastAPI routes --------------------------------------------------------------------------
    @http_api.get("/health")
    def health(self) -> dict[str, Any]:
        """Liveness plus what is degraded: no model, prediction log behind (database down)."""
        with LATENCY.labels("/health").time():
            plog = self.runtime.prediction_log
            problems = [] if self.runtime.models else ["no model loaded"]
            if self.runtime.reload_error:
                problems.append(f"model registry unreachable ({self.runtime.reload_error}): serving "
                                f"{', '.join(v for v, _ in self.runtime.split()) or 'nothing'} as loaded")
            if not self._features_reachable():
                problems.append("online feature store unreachable since start")
            if plog is not None and not plog.healthy:
                problems.append(f"prediction log behind: {plog.pending} rows queued (database unreachable)")
            problems += self.runtime.feature_ages.problems()
            return {
                "status": "degraded" if problems else "ok",
                "problems": problems,
                "models": self.runtime.split(),
                "prediction_log": None if plog is None else {"healthy": plog.healthy, "pending": plog.pending,
                                                             "dead_letters": plog.dead_letters},
                "uptime_seconds": round(time.time() - self.started, 1),
            }

    @http_api.get("/weights")
    def weights(self) -> dict[str, Any]:
        """The current signal weights of the rule signal."""
        with LATENCY.labels("/weights").time():
            return {"weights": dict(self.runtime.weights)}

    @http_api.get("/models")
    def models(self, limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
        """`models`: the versions this replica serves and their traffic split. `versions`: the registered
        versions, newest first (`?limit=N`), with status and traffic, evaluation metrics, the gate's decision and
        reasons, the training data's range and creation time (null, with `registry_error`, while the registry is
        unreachable)."""
        with LATENCY.labels("/models").time():
            answer = describe(self.runtime)
            served = {version for version, _ in self.runtime.split()}
            try:
                records = list_models(self.admin.engine, limit=limit)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                return answer | {"versions": None, "registry_error": f"the model registry is unreachable "
                                                                      f"({type(exc).__name__}): retry shortly"}
            versions = [version_summary(r) | {"served_here": r.version in served} for r in records]
            return answer | {"versions": versions}

    # -- admin: mounted FastAPI routes, admin keys only (bentos.security) ------------------------------------
    @http_api.post("/train", status_code=202, responses={200: {"description": "Skipped: no new bar since the "
                                                                   "production model's training data ended"}})
    def train(self, request: Request, body: TrainRequest | None = None) -> Any:
        """Start a training pipeline (KFP when KFP_HOST is set, else the local runner): 202 with the run id at once.
        No body (and no Content-Type) means the defaults. Without `force_retrain`, a run with no new bar since the
        production model's training data ended is skipped: 200 with the reason, recorded as `skipped`."""
        if body is None and request.headers.get("content-type"):  # said JSON, sent nothing: a broken client
            return JSONResponse({"error": "body: empty or null; send a JSON object ({} for the defaults), or no "
                                          "body and no Content-Type"}, status_code=400)
        try:
            answer = self.admin.train(body or TrainRequest(), actor_of(request.scope))
        except AdminError as exc:
            return _admin_error(exc)
        return JSONResponse(answer, status_code=200) if answer["status"] == "skipped" else answer

    @http_api.get("/training-status")
    def training_status(self, limit: int = Query(10, ge=1, le=100)) -> Any:
        """The latest training runs, newest first: status, parameters, error, registered version."""
        try:
            return self.admin.status(limit)
        except AdminError as exc:
            return _admin_error(exc)

    @http_api.post("/models/rollback")
    def rollback_model(self, request: Request, body: RollbackRequest | None = None) -> Any:
        """Restore the previous production version."""
        try:
            return self.admin.rollback(body or RollbackRequest(), actor_of(request.scope))
        except AdminError as exc:
            return _admin_error(exc)

    @http_api.post("/models/{version}/promote")
    def promote_model(
        self, request: Request, body: PromoteRequest, version: str = Path(pattern=VERSION_PATTERN, max_length=64)
    ) -> Any:
        """Give VERSION a traffic share: 100 production, 1-99 canary, 0 ends its canary; force needs a reason.
        VERSION `previous-version` is the version that was production before the current one: with 100 it does
        what POST /models/rollback does (409 saying why when there is none)."""
        try:
            return self.admin.promote(version, body, actor_of(request.scope))
        except AdminError as exc:
            return _admin_error(exc)


def secured(app: Any) -> SecurityMiddleware:
    """The security middleware around BentoML's app, built with the settings when the worker builds the app."""
    settings = load_settings()
    return SecurityMiddleware(app, **security_options(settings), audit=AdminAudit(engine_for(settings)))


SignalService.add_asgi_middleware(secured)

__all__ = ["EXAMPLE_INPUT", "SignalService"]
