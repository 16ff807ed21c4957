"""A prediction request without `timeframe` reads the series of the timeframe the answering model was trained on
(from its metrics.json); an explicit timeframe is read as given; the OpenAPI schema says so."""

from __future__ import annotations

import numpy as np

from aicash.model_input import MODEL_FEATURES, WINDOW_BARS
from aicash.registry.summary import trained_timeframe
from aicash.serving.runtime import FeatureSnapshot, LoadedModel, SignalRuntime
from aicash.serving.schemas import PredictRequest


class Uniform:
    def predict_proba(self, windows: np.ndarray) -> np.ndarray:
        return np.full((len(windows), 3), 1 / 3)


def runtime_reading(read: list[tuple[str, str]], models: list[LoadedModel]) -> SignalRuntime:
    window = np.ones((WINDOW_BARS, len(MODEL_FEATURES)), dtype=np.float32)

    def reader(symbol: str, timeframe: str) -> FeatureSnapshot:
        read.append((symbol, timeframe))
        return FeatureSnapshot(indicators=dict.fromkeys(MODEL_FEATURES, 1.0), window=window)

    return SignalRuntime(read_features=reader, load_models=lambda: models, read_weights=dict, cache_ttl_seconds=60,
                         reload_seconds=3600)


def test_the_answering_models_timeframe_is_read_when_the_request_names_none() -> None:
    read: list[tuple[str, str]] = []
    runtime = runtime_reading(read, [LoadedModel("v1", "production", 100.0, Uniform(), timeframe="1d")])
    runtime.predict(PredictRequest(symbol="SPX"))
    runtime.predict(PredictRequest(symbol="SPX", timeframe="4h"))
    runtime.close()
    assert read == [("SPX", "1d"), ("SPX", "4h")]


def test_a_model_that_does_not_say_reads_1h() -> None:
    read: list[tuple[str, str]] = []
    runtime = runtime_reading(read, [LoadedModel("v1", "production", 100.0, Uniform())])
    runtime.predict(PredictRequest(symbol="EURUSD"))
    runtime.close()
    assert read == [("EURUSD", "1h")]


def test_the_timeframe_a_version_was_trained_on() -> None:
    assert trained_timeframe({"data": {"series": ["SPX/1d"]}}) == "1d"
    assert trained_timeframe({"data": {"series": ["SPX/1d", "NDX/1d"]}}) == "1d"
    assert trained_timeframe({"data": {"series": ["SPX/1d", "EURUSD/1h"]}}) is None  # several: the request says
    assert trained_timeframe({}) is None


def test_the_openapi_schema_describes_the_default() -> None:
    field = PredictRequest.model_json_schema()["properties"]["timeframe"]
    assert "trained on" in field["description"] and field.get("default") is None
