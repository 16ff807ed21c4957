"""The inference runtime: merging request indicators with the stored window, canary split, cache, reloads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aicash.indicators import with_indicators
from aicash.market.samples import load_sample
from aicash.model_input import MODEL_FEATURES, WINDOW_BARS
from aicash.serving.runtime import FeatureSnapshot, LoadedModel, SignalRuntime
from aicash.serving.schemas import EXAMPLE_INPUT, PredictRequest


class SoftmaxOnLastBar:
    """A real (linear softmax) model over the last bar's features; it records the windows it saw."""

    def __init__(self, seed: int) -> None:
        self.weights = np.random.default_rng(seed).normal(size=(len(MODEL_FEATURES), 3)) * 0.01
        self.seen: list[np.ndarray] = []

    def predict_proba(self, windows: np.ndarray) -> np.ndarray:
        self.seen.append(windows)
        logits = windows[:, -1, :] @ self.weights
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def snapshot() -> FeatureSnapshot:
    frame = with_indicators(load_sample("eurusd-1h"))
    window = frame[list(MODEL_FEATURES)].tail(WINDOW_BARS).to_numpy(dtype=np.float32)
    return FeatureSnapshot(indicators=dict(zip(MODEL_FEATURES, window[-1].tolist(), strict=True)), window=window)


def make_runtime(snapshot, split):  # type: ignore[no-untyped-def]
    state = {"split": split}

    def read(symbol: str, timeframe: str) -> FeatureSnapshot:
        if symbol != "EURUSD":
            raise LookupError(symbol)
        return snapshot

    runtime = SignalRuntime(read_features=read, load_models=lambda: state["split"], read_weights=dict,
                            cache_ttl_seconds=60, reload_seconds=3600)
    return runtime, state


def test_request_indicators_overwrite_the_latest_bar(snapshot) -> None:  # type: ignore[no-untyped-def]
    model = SoftmaxOnLastBar(0)
    runtime, _ = make_runtime(snapshot, [LoadedModel("v1", "production", 100.0, model)])
    answer = runtime.predict(PredictRequest.model_validate(EXAMPLE_INPUT))
    seen = model.seen[-1][0]
    assert seen.shape == (WINDOW_BARS, len(MODEL_FEATURES))
    rsi = MODEL_FEATURES.index("rsi_value")
    assert seen[-1, rsi] == 65 and seen[-2, rsi] == snapshot.window[-2, rsi]
    assert seen[-1, MODEL_FEATURES.index("stoch_k")] == pytest.approx(snapshot.indicators["stoch_k"])
    assert answer.signal in {"BUY", "SELL", "HOLD"} and abs(sum(answer.probabilities.values()) - 1) < 1e-6
    assert answer.model_version == "v1" and -1 <= answer.composite_score <= 1
    runtime.close()


def test_canary_split_cache_and_reload(snapshot) -> None:  # type: ignore[no-untyped-def]
    prod, canary = SoftmaxOnLastBar(1), SoftmaxOnLastBar(2)
    runtime, state = make_runtime(
        snapshot, [LoadedModel("v2", "approved", 20.0, canary), LoadedModel("v1", "production", 80.0, prod)]
    )
    reqs = [PredictRequest(symbol="EURUSD", request_id=f"r{i}", indicators={"rsi_value": i % 100}) for i in range(2000)]
    versions = [a.model_version for a in runtime.predict_many(reqs)]
    assert 0.17 < versions.count("v2") / len(versions) < 0.23
    again = runtime.predict_many(reqs[:50])
    assert [a.model_version for a in again] == versions[:50] and all(a.cached for a in again)

    state["split"] = [LoadedModel("v2", "production", 100.0, canary)]  # promoted to 100 %
    assert runtime.reload()
    after = runtime.predict_many(reqs[:100])
    assert {a.model_version for a in after} == {"v2"} and not any(a.cached for a in after)

    def broken() -> list[LoadedModel]:
        raise ConnectionError("object store down")

    runtime.load_models = broken
    assert not runtime.reload() and runtime.split() == [("v2", 100.0)]  # keeps serving the current model
    runtime.close()


def test_no_model_and_unknown_symbol(snapshot) -> None:  # type: ignore[no-untyped-def]
    runtime, _ = make_runtime(snapshot, [])
    with pytest.raises(LookupError, match="no model is loaded"):
        runtime.predict(PredictRequest(symbol="EURUSD"))
    runtime.close()
    runtime, _ = make_runtime(snapshot, [LoadedModel("v1", "production", 100.0, SoftmaxOnLastBar(0))])
    with pytest.raises(LookupError):
        runtime.predict(PredictRequest(symbol="GBPUSD"))
    runtime.close()


def test_predictions_are_logged(snapshot, engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from aicash.serving.prediction_log import PredictionLog

    plog = PredictionLog(engine, spill_path=tmp_path / "spill.jsonl", interval_seconds=0.05)
    runtime, _ = make_runtime(snapshot, [LoadedModel("v1", "production", 100.0, SoftmaxOnLastBar(0))])
    runtime.prediction_log = plog
    runtime.predict(PredictRequest(symbol="EURUSD", request_id="a", indicators={"rsi_value": 40}))
    runtime.predict(PredictRequest(symbol="EURUSD", request_id="b", indicators={"rsi_value": 40}))  # cached
    runtime.close()
    with engine.connect() as conn:
        rows = pd.read_sql("SELECT request_id, model_version, features FROM predictions ORDER BY request_id", conn)
    assert rows.request_id.tolist() == ["a", "b"] and set(rows.model_version) == {"v1"}
