"""Builds the service's parts from settings: the runtime over the registry, Feast and the database, and the
BentoML service configuration (traffic, CORS, access log) tuned as measured on 2 cores (see docs/serving.md)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from aicash.db.engine import engine_for, ready_engine
from aicash.model_input import MODEL_NAME
from aicash.registry import current_production, list_models, load_artifacts, store_for
from aicash.registry.summary import trained_timeframe
from aicash.serving.freshness import FeatureAgePolicy
from aicash.serving.key_snapshot import KeySnapshot, publish_key_snapshot
from aicash.serving.keys import KeyVerifier
from aicash.serving.prediction_log import PredictionLog
from aicash.serving.ratelimit import rate_limiter
from aicash.serving.runtime import LoadedModel, SignalRuntime
from aicash.settings import Settings
from aicash.signals.weights import current_weights
from aicash.training.artifacts import ServableModel, load_model
from bentos.online_reader import OnlineFeatureReader

log = logging.getLogger("aicash.service")
# The forward pass of the torch families: ONNX Runtime, exported from model.pt at load and checked against it
# within 1e-5 (TorchScript serves when it cannot be); measured per request in docs/serving.md.
SERVING_RUNTIME = "onnxruntime"


def serving_model(folder: Path | str) -> ServableModel:
    """A model artifact as the service serves it: `SERVING_RUNTIME`, and an LSTM's or GRU's windows whose earlier
    bars were seen before answered by the last step (`aicash.training.last_step`)."""
    return load_model(folder, runtime=SERVING_RUNTIME, last_step=True)


def service_config(settings: Settings) -> dict[str, Any]:
    """BentoML service options: a 5 s request timeout (the 60 s default keeps a million timers alive under
    load and causes long GC pauses), no access log on the hot path, CORS from CORS_ALLOW_ORIGINS."""
    origins = settings.cors_origins
    return {
        "name": "aicash-signal",
        "traffic": {"timeout": 5, "concurrency": 256},
        "resources": {"cpu": "1"},
        "logging": {"access": {"enabled": False}},
        "http": {
            "cors": {
                "enabled": bool(origins),
                "access_control_allow_origins": origins,
                "access_control_allow_methods": ["GET", "POST", "OPTIONS"],
                "access_control_allow_headers": ["Content-Type", "X-API-Key", "Authorization", "X-Request-Id"],
                "access_control_max_age": 600,
            }
        },
    }


def security_options(settings: Settings) -> dict[str, Any]:
    """Options of `bentos.security.SecurityMiddleware`; keys fall back to the published key snapshot while the
    database is unreachable; the rate limiter is the one `RATE_LIMIT_BACKEND` selects."""
    return {
        "verifier": KeyVerifier(engine_for(settings), fallback=KeySnapshot(store_for(settings)).lookup),
        "limiter": rate_limiter(settings),
        "max_body_bytes": settings.max_request_bytes,
    }


class RegistryModels:
    """Loads the registry's production and canary versions, downloading (and verifying) each version once."""

    def __init__(self, settings: Settings, engine: Any) -> None:
        self.settings = settings
        self.engine = engine
        self.store = store_for(settings)
        self.cache_dir = Path(tempfile.mkdtemp(prefix="aicash-models-"))
        self.loaded: dict[str, Any] = {}

    def __call__(self) -> list[LoadedModel]:
        records = {r.version: r for r in list_models(self.engine, MODEL_NAME)}
        if self.settings.model_version:  # pinned by MODEL_VERSION
            split = [(self.settings.model_version, 100.0)]
        else:
            canaries = [r for r in records.values() if r.is_canary]
            production = current_production(self.engine, MODEL_NAME)
            split = [(c.version, c.traffic_percentage) for c in canaries]
            if production is not None:
                split.append((production.version, 100.0 - sum(p for _, p in split)))
        models = []
        for version, percent in split:
            if version not in self.loaded:
                folder = load_artifacts(self.engine, self.store, version, self.cache_dir / version, MODEL_NAME)
                self.loaded[version] = serving_model(folder)
            record = records.get(version)
            status = record.status if record else "unknown"
            forced = record is not None and record.gate_passed is not True
            timeframe = trained_timeframe(record.metrics) if record is not None else None
            models.append(LoadedModel(version, status, percent, self.loaded[version], forced=forced,
                                      timeframe=timeframe))
        return models


def features_reachable(runtime: SignalRuntime) -> bool:
    """Whether the runtime's online store has answered since start (opening and probing it if not yet); True for a
    feature reader that does not say."""
    reachable = getattr(runtime.read_features, "reachable", None)
    return True if reachable is None else bool(reachable())


def warm_up(runtime: SignalRuntime) -> None:
    """What a worker does before it freezes its start-up objects out of the GC's way: open the online store and read
    through it, run each model (`SignalRuntime.warm_up`)."""
    features_reachable(runtime)
    runtime.warm_up()


def admin_engine(settings: Settings) -> Engine:
    """The admin operations' engine (`bentos.admin.AdminOps`): ADMIN_DATABASE_URL, a login in aicash_training that
    may write models, training runs and their audit entries; the service's own (DATABASE_URL) when it is unset."""
    if settings.admin_database_url is None:
        return engine_for(settings)
    return engine_for(settings.model_copy(update={"database_url": settings.admin_database_url}))


def publish_keys(settings: Settings) -> None:
    """Rewrite the key snapshot from the database (at start: keeps it current whoever changed the keys)."""
    try:
        count = publish_key_snapshot(engine_for(settings), store_for(settings))
    except Exception as exc:  # the database or the store is down: the last snapshot published stays
        log.warning("key snapshot not published (%s); the last one published stays in use", type(exc).__name__)
    else:
        log.info("key snapshot published: %d active keys", count)


def build_runtime(settings: Settings) -> SignalRuntime:
    engine = engine_for(settings)
    try:
        ready_engine(settings)
    except OperationalError as exc:  # down at start: serve what can be served, pick the rest up when it is back
        log.warning("database unreachable at start (%s); the service starts degraded", type(exc).__name__)

    def weights() -> Mapping[str, float]:
        return current_weights(engine)

    return SignalRuntime(
        read_features=OnlineFeatureReader(settings),
        load_models=RegistryModels(settings, engine),
        read_weights=weights,
        prediction_log=PredictionLog(engine, spill_path=settings.aicash_home / "prediction-log-spill.jsonl"),
        cache_ttl_seconds=settings.prediction_cache_ttl_seconds,
        reload_seconds=settings.registry_reload_seconds,
        freshness=FeatureAgePolicy(settings.max_feature_age_bars, settings.feature_age_grace_seconds,
                                   settings.refuse_stale_features),
    )
