"""The inference runtime: loaded models, canary routing, cache, weights and the prediction log, framework-free.

The BentoML service in `bentos/` owns one `SignalRuntime` and maps HTTP onto it. Dependencies that live in
other tools (the online feature store, the model loader) are injected as plain callables, so the runtime is
tested without Feast or BentoML.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Protocol

import numpy as np

from aicash.model_input import MODEL_FEATURES
from aicash.serving.cache import TTLCache
from aicash.serving.freshness import FeatureAgePolicy, FeatureAges, StaleFeaturesError
from aicash.serving.outages import is_outage
from aicash.serving.prediction_log import PredictionLog
from aicash.serving.request_ids import new_request_id
from aicash.serving.routing import route
from aicash.serving.schemas import Prediction, PredictRequest
from aicash.signals.rule import SIGNALS, composite_scores

log = logging.getLogger(__name__)
DEFAULT_TIMEFRAME = "1h"  # a request without timeframe, answered by a model that does not say its own
_COLUMN = {name: i for i, name in enumerate(MODEL_FEATURES)}  # a model feature's column in the window


class Model(Protocol):
    """A loaded model: raw indicator windows (batch, window, features) in, class probabilities out."""

    def predict_proba(self, windows: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class FeatureSnapshot:
    """What the online store holds for a symbol: the latest bar's indicators and the window ending there."""

    indicators: Mapping[str, float]
    window: np.ndarray  # (window_bars, len(MODEL_FEATURES)), oldest first
    event_timestamp: datetime | None = None  # the latest bar's time (UTC), as the online store gives it

    @cached_property
    def latest_inputs(self) -> tuple[dict[str, float], np.ndarray]:
        """The latest bar's model features as floats by name, and as the window's float32 row (made once per
        snapshot: the requests of a series share it until the next read)."""
        latest = {name: float(self.indicators[name]) for name in MODEL_FEATURES}
        return latest, np.array([latest[name] for name in MODEL_FEATURES], dtype=np.float32)


@dataclass(frozen=True)
class LoadedModel:
    version: str
    status: str
    traffic_percentage: float
    model: Model
    forced: bool = False  # promoted past a gate that rejected (or never approved) it
    timeframe: str | None = None  # the one timeframe it was trained on: a request that names none reads it

    @property
    def label(self) -> str:
        """The status as answers show it; a forced promotion says so, it is never passed off as approved."""
        return f"{self.status} (forced past the gate)" if self.forced else self.status


@dataclass(frozen=True)
class _Pending:
    """A request waiting for its model's forward pass."""

    index: int
    request_id: str
    key: tuple[Any, ...]  # its answer's key in the cache
    latest: dict[str, float]
    window: np.ndarray
    freshness: dict[str, Any]  # features_as_of and stale of its answer
    timeframe: str  # the series it reads (the request's, else the answering model's)
    given: dict[str, float]  # the indicators the request gave


class NotFoundError(LookupError):
    """What a request asks for is not there (404, or 503 while no model is loaded). Only these are caught as
    "not found": any other LookupError (a KeyError, an IndexError) is a bug and surfaces as a 500."""


class UnknownSymbolError(NotFoundError):
    """The online store has no features for the symbol."""


class NoModelLoadedError(NotFoundError):
    """No model is loaded: nothing to predict with until one is promoted (or the registry answers)."""


class FeaturesUnavailableError(RuntimeError):
    """The online store cannot be reached and the series was never read before: no window to predict from."""


# A cached answer: the fields of its Prediction that a hit reuses (`_CACHED`), its probabilities in SIGNALS order and
# the features it was computed from in MODEL_FEATURES order, as one flat tuple of atoms. The garbage collector stops
# tracking such a tuple (and the cache's entry holding it) at its first pass, so the thousands of answers a busy
# cache holds are never walked again; a Prediction with its dicts and field set is four tracked objects, walked by
# every pass for as long as it is cached.
_CACHED = ("signal", "confidence", "model_version", "model_status", "composite_score", "latency_ms", "features_as_of")
_PROBABILITIES = len(_CACHED)
_FEATURES = _PROBABILITIES + len(SIGNALS)


def _frozen(fields: dict[str, Any], latest: Mapping[str, float]) -> tuple[Any, ...]:
    return (*[fields[name] for name in _CACHED], *fields["probabilities"].values(),
            *[latest[name] for name in MODEL_FEATURES])


def _thawed(cached: tuple[Any, ...]) -> tuple[dict[str, Any], dict[str, float]]:
    """A cached answer's Prediction fields (without request_id, cached and stale) and its features."""
    fields = dict(zip(_CACHED, cached[:_PROBABILITIES], strict=True))
    fields["probabilities"] = dict(zip(SIGNALS, cached[_PROBABILITIES:_FEATURES], strict=True))
    return fields, dict(zip(MODEL_FEATURES, cached[_FEATURES:], strict=True))


def _json_ready(fields: dict[str, Any]) -> dict[str, Any]:
    """A Prediction's fields as the prediction log stores its output: `features_as_of` as ISO 8601 text."""
    as_of = fields["features_as_of"]
    return fields | {"features_as_of": None if as_of is None else as_of.isoformat()}


FeatureReader = Callable[[str, str], FeatureSnapshot]
ModelLoader = Callable[[], Sequence[LoadedModel]]  # the registry's current split, canary first
WeightsReader = Callable[[], Mapping[str, float]]


@dataclass
class SignalRuntime:
    """Answers predictions; reloads the registry's split in the background so promotions need no restart."""

    read_features: FeatureReader
    load_models: ModelLoader
    read_weights: WeightsReader
    prediction_log: PredictionLog | None = None
    cache_ttl_seconds: float = 5.0
    reload_seconds: float = 10.0
    freshness: FeatureAgePolicy = field(default_factory=FeatureAgePolicy)
    models: list[LoadedModel] = field(default_factory=list)
    weights: Mapping[str, float] = field(default_factory=dict)
    reload_error: str | None = None  # why the last registry reload failed; None after a good one

    def __post_init__(self) -> None:
        self.cache: TTLCache[tuple[Any, ...]] = TTLCache(self.cache_ttl_seconds)  # `_frozen` answers
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last_snapshots: dict[tuple[str, str], FeatureSnapshot] = {}
        self.feature_ages = FeatureAges(self.freshness)
        self.reload()
        self._thread = threading.Thread(target=self._reload_loop, name="registry-reload", daemon=True)
        self._thread.start()

    # -- registry ------------------------------------------------------------------------------------------
    def reload(self) -> bool:
        """Pick up the registry's current models and weights; keep the current ones if that fails."""
        try:
            models, weights = list(self.load_models()), dict(self.read_weights())
        except Exception as exc:  # the store or database may be down: keep serving what is loaded
            log.warning("registry reload failed, keeping %s: %s", [m.version for m in self.models], exc)
            self.reload_error = f"{type(exc).__name__}: {next(iter(str(exc).splitlines()), '')[:200]}"
            return False
        self.reload_error = None
        with self._lock:
            changed = [(m.version, m.traffic_percentage) for m in models] != self.split()
            self.models, self.weights = models, weights
        if changed:
            self.cache.clear()
            log.info("serving %s", self.split())
        return True

    def split(self) -> list[tuple[str, float]]:
        return [(m.version, m.traffic_percentage) for m in self.models]

    def _reload_loop(self) -> None:
        while not self._stop.wait(self.reload_seconds):
            self.reload()

    def close(self) -> None:
        self._stop.set()
        if self.prediction_log is not None:
            self.prediction_log.close()

    def warm_up(self) -> None:
        """One forward pass per loaded model on a window of zeros, so that the runtime's first-call work (TorchScript
        profiles its first runs and then compiles, ONNX Runtime allocates its buffers) is done before the service
        freezes its start-up objects out of the garbage collector's way, not on the first requests."""
        for loaded in list(self.models):
            bars, features = getattr(loaded.model, "window_bars", None), getattr(loaded.model, "features", None)
            if bars is None or features is None:
                continue
            try:
                for _ in range(3):
                    loaded.model.predict_proba(np.zeros((1, bars, len(features)), dtype=np.float32))
            except Exception as exc:  # a model that cannot answer zeros answers real requests or fails there
                log.warning("warm-up of %s failed: %s", loaded.version, exc)

    # -- predictions ---------------------------------------------------------------------------------------
    def answers_in_memory(self, request: PredictRequest) -> bool:
        """Whether `predict_many([request])` would take no I/O now: the features of its series, at each timeframe
        the serving models would read it at, are held by the reader (`read_features.holds`; a reader without it
        always reads), and the prediction log only queues the row (`PredictionLog.records_in_memory`). The
        service answers such a request on its event loop, and any other on a worker thread."""
        holds = getattr(self.read_features, "holds", None)
        plog = self.prediction_log
        if holds is None or (plog is not None and not plog.records_in_memory):
            return False
        timeframes = {request.timeframe or m.timeframe or DEFAULT_TIMEFRAME for m in self.models}
        return all(holds(request.symbol, timeframe) for timeframe in timeframes)

    def predict(self, request: PredictRequest) -> Prediction:
        return self.predict_many([request])[0]

    def predict_many(self, requests: Sequence[PredictRequest]) -> list[Prediction]:
        """One forward pass per model for the whole batch; cached answers skip it."""
        start = time.perf_counter()
        with self._lock:
            models = {m.version: m for m in self.models}
            split = self.split()
        if not models:
            raise NoModelLoadedError(
                "no model is loaded: promote one with `aicash models promote VERSION --traffic 100`")
        answers: list[Prediction | None] = [None] * len(requests)
        pending: dict[str, list[_Pending]] = {}
        for i, req in enumerate(requests):
            request_id = req.request_id or new_request_id()
            version = split[0][0] if len(split) == 1 else route(request_id, split)
            timeframe: str = req.timeframe or models[version].timeframe or DEFAULT_TIMEFRAME
            # the given indicators (the request was validated: the fields are floats or None)
            given = {name: value for name, value in req.indicators.__dict__.items() if value is not None}
            key = (version, req.symbol, timeframe, tuple(sorted(given.items())))
            if (hit := self.cache.get(key)) is not None:
                fields, features = _thawed(hit)
                # staleness judged now: a cached answer's bar keeps ageing
                fields |= {"cached": True, "request_id": request_id,
                           **self._freshness(req.symbol, timeframe, fields["features_as_of"])}
                answers[i] = Prediction.from_fields(fields)
                self._log(req, timeframe, given, _json_ready(fields), features)
                continue
            latest, window, as_of = self._merged_inputs(req.symbol, timeframe, given)
            # refuses before the forward pass when REFUSE_STALE_FEATURES is on
            fresh = self._freshness(req.symbol, timeframe, as_of)
            pending.setdefault(version, []).append(
                _Pending(i, request_id, key, latest, window, fresh, timeframe, given))
        for version, items in pending.items():
            # one window is passed as a view (np.stack copies it: ~5 µs, on every request)
            windows = items[0].window[None] if len(items) == 1 else np.stack([p.window for p in items])
            probs = models[version].model.predict_proba(windows)
            scores = composite_scores([p.latest for p in items], self.weights)
            for item, prob, score in zip(items, probs, scores, strict=True):
                fields = self._answer(item.request_id, models[version], prob, float(score), start, item.freshness)
                answer = Prediction.from_fields(fields)  # built here from checked values: no validation
                self.cache.put(item.key, _frozen(fields, item.latest))
                self._log(requests[item.index], item.timeframe, item.given, _json_ready(fields), item.latest)
                answers[item.index] = answer
        return [a for a in answers if a is not None]

    def _snapshot(self, symbol: str, timeframe: str) -> FeatureSnapshot:
        """The online store's features; while the store is unreachable, the last ones read for the series."""
        try:
            snapshot = self.read_features(symbol, timeframe)
        except Exception as exc:
            if not is_outage(exc):  # the store answered (nothing for this series), or a bug: not an outage
                raise
            stale = self._last_snapshots.get((symbol, timeframe))
            if stale is None:
                raise FeaturesUnavailableError(
                    f"the online feature store is unreachable and {symbol} {timeframe} was not read before it went "
                    f"down ({type(exc).__name__}); retry shortly") from None
            log.warning("online store unavailable (%s); serving %s %s from its last read", exc, symbol, timeframe)
            return stale
        self._last_snapshots[(symbol, timeframe)] = snapshot
        return snapshot

    def _merged_inputs(
        self, symbol: str, timeframe: str, given: dict[str, float]
    ) -> tuple[dict[str, float], np.ndarray, datetime | None]:
        """Given indicators overwrite the latest bar's stored values; earlier bars come from the store. Also the
        time of the latest stored bar, which the answer carries as `features_as_of`."""
        snapshot = self._snapshot(symbol, timeframe)
        self.feature_ages.observe(symbol, timeframe, snapshot.event_timestamp)
        stored, row = snapshot.latest_inputs
        window = np.array(snapshot.window, dtype=np.float32, copy=True)
        window[-1] = row
        latest = dict(stored)
        for name, value in given.items():
            if (column := _COLUMN.get(name)) is not None:
                latest[name] = window[-1, column] = float(value)
        return latest, window, snapshot.event_timestamp

    def _freshness(self, symbol: str, timeframe: str, as_of: datetime | None) -> dict[str, Any]:
        """`features_as_of` and `stale` of an answer, judged now; raises `StaleFeaturesError` for a stale series
        when REFUSE_STALE_FEATURES is on."""
        stale = self.freshness.is_stale(timeframe, as_of, datetime.now(UTC))
        if stale and self.freshness.refuse:
            raise StaleFeaturesError(symbol, timeframe, as_of, self.freshness.limit_seconds(timeframe))
        return {"features_as_of": as_of, "stale": stale}

    @staticmethod
    def _answer(request_id: str, loaded: LoadedModel, probs: np.ndarray, score: float, start: float,
                freshness: dict[str, Any]) -> dict[str, Any]:
        """The fields of a `Prediction` (every one set, with the types the schema declares)."""
        values = probs.tolist()
        best = values.index(max(values))
        return {
            "signal": SIGNALS[best], "confidence": values[best],
            "probabilities": dict(zip(SIGNALS, values, strict=True)),
            "model_version": loaded.version, "model_status": loaded.label, "composite_score": score,
            "latency_ms": (time.perf_counter() - start) * 1000.0, "request_id": request_id, "cached": False,
            **freshness,
        }

    def _log(self, req: PredictRequest, timeframe: str, given: dict[str, float], output: dict[str, Any],
             features: Mapping[str, float]) -> None:
        """Queue the prediction's row: the request as answered (its given indicators, the timeframe it was read
        at), the features the model saw and the answer, as JSON-ready values."""
        if self.prediction_log is not None:
            self.prediction_log.record({
                "request_id": output["request_id"], "symbol": req.symbol,
                "request": {"symbol": req.symbol, "indicators": given, "timeframe": timeframe,
                            "request_id": req.request_id},
                "features": dict(features), "output": output,
                "model_version": output["model_version"], "latency_ms": output["latency_ms"],
            })


def describe(runtime: SignalRuntime) -> dict[str, Any]:
    """Loaded versions (with their model family, the runtime of their forward pass and whether windows with a seen
    prefix are answered by the last step) and the traffic split, for `GET /models`."""
    return {
        "models": [
            {"version": m.version, "status": m.status, "label": m.label, "forced": m.forced,
             "traffic_percentage": m.traffic_percentage, "family": getattr(m.model, "family", None),
             "runtime": getattr(m.model, "runtime", None), "last_step": bool(getattr(m.model, "last_step", False))}
            for m in runtime.models
        ]
    }
