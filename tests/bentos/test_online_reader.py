"""The service's online feature reader (held for `max_age_seconds`, read again ahead of expiry) and the runtime's
rule for what it answers from memory, on a real local feature store."""

from __future__ import annotations

import time

import pytest

from aicash.market.ingest import ingest_frame
from aicash.market.samples import load_sample
from aicash.serving.cache import TTLCache
from aicash.serving.prediction_log import PredictionLog
from aicash.serving.runtime import LoadedModel, SignalRuntime
from aicash.serving.schemas import PredictRequest
from bentos.online_reader import OnlineFeatureReader
from features.store import apply, materialize
from tests.serving.test_runtime import SoftmaxOnLastBar


@pytest.fixture
def materialized(settings, engine):  # type: ignore[no-untyped-def]
    """EURUSD 1h in the online store, its sample's last bar left out (the `add_last_bar` of the test adds it)."""
    sample = load_sample("eurusd-1h")
    ingest_frame(engine, sample.iloc[:-1], "EURUSD", "1h")
    apply(settings)
    materialize(settings)

    def add_last_bar() -> None:
        ingest_frame(engine, sample, "EURUSD", "1h")
        materialize(settings)

    return sample["ts"].iloc[-1].to_pydatetime(), sample["ts"].iloc[-2].to_pydatetime(), add_last_bar


def test_ttl_cache_age() -> None:
    cache: TTLCache[int] = TTLCache(0.2)
    assert cache.age("a") is None
    cache.put("a", 1)
    assert 0 <= cache.age("a") < 0.1  # type: ignore[operator]
    time.sleep(0.25)
    assert cache.age("a") is None  # expired


def test_a_series_is_read_again_ahead_of_expiry(settings, materialized) -> None:  # type: ignore[no-untyped-def]
    """Held features past half their age are read again on a background thread: a bar materialized meanwhile is
    served before they would have expired, and the features stay held all along (no request waits for the store)."""
    last, before_last, add_last_bar = materialized
    max_age = 6.0
    reader = OnlineFeatureReader(settings, max_age_seconds=max_age)
    start = time.monotonic()
    assert reader("EURUSD", "1h").event_timestamp == before_last
    add_last_bar()
    assert reader("EURUSD", "1h").event_timestamp == before_last  # held: not read again yet
    time.sleep(max(0.0, start + max_age / 2 + 0.1 - time.monotonic()))
    assert reader.holds("EURUSD", "1h")  # past half its age: starts the background read
    while (seen := reader("EURUSD", "1h").event_timestamp) != last and time.monotonic() - start < max_age - 0.2:
        assert reader.holds("EURUSD", "1h")
        time.sleep(0.02)
    assert seen == last, "the background read did not land before the features expired"
    assert reader.recent.age("EURUSD|1h") < max_age / 2  # type: ignore[operator]


def test_features_not_read_recently_are_not_held(settings, materialized) -> None:  # type: ignore[no-untyped-def]
    reader = OnlineFeatureReader(settings, max_age_seconds=0.3)
    assert not reader.holds("EURUSD", "1h")  # never read
    reader("EURUSD", "1h")
    assert reader.holds("EURUSD", "1h") and not reader.holds("EURUSD", "4h") and not reader.holds("GBPUSD", "1h")
    time.sleep(0.35)
    assert not reader.holds("EURUSD", "1h")  # expired


def test_the_runtime_answers_from_memory_only_what_needs_no_io(settings, engine, materialized, tmp_path) -> None:  # type: ignore[no-untyped-def]
    reader = OnlineFeatureReader(settings)
    models = [LoadedModel("v1", "production", 100.0, SoftmaxOnLastBar(0), timeframe="1h")]
    runtime = SignalRuntime(read_features=reader, load_models=lambda: models, read_weights=dict, reload_seconds=3600)
    request = PredictRequest(symbol="EURUSD")
    assert not runtime.answers_in_memory(request)  # the series is not held yet: its read goes to a thread
    runtime.predict(request)
    assert runtime.answers_in_memory(request)
    assert not runtime.answers_in_memory(PredictRequest(symbol="EURUSD", timeframe="4h"))  # another series
    assert not runtime.answers_in_memory(PredictRequest(symbol="GBPUSD"))  # unknown: the store says so

    # a reader that cannot say what it holds always reads
    plain = SignalRuntime(read_features=lambda symbol, timeframe: reader(symbol, timeframe), load_models=lambda: models,
                          read_weights=dict, reload_seconds=3600)
    assert not plain.answers_in_memory(request)

    # a prediction log whose queue is full spills the next row to a file: not on the event loop
    full = PredictionLog(engine, spill_path=tmp_path / "spill.jsonl", interval_seconds=3600, batch_size=1000,
                         wake_rows=1000, max_memory_rows=1)
    runtime.prediction_log = full
    assert runtime.answers_in_memory(request)
    runtime.predict(request)  # queued, not written (the writer waits for 1,000 rows or an hour)
    assert not full.records_in_memory and not runtime.answers_in_memory(request)
    runtime.close()
    plain.close()
