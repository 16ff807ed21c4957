"""The inference runtime: merging request indicators with the stored window, canary split, cache, reloads."""

from __future__ import annotations

import gc
import time
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import select

from aicash.db.models import Prediction
from aicash.indicators import with_indicators
from aicash.market.samples import load_sample
from aicash.model_input import MODEL_FEATURES, WINDOW_BARS
from aicash.serving.freshness import FeatureAgePolicy, FeatureAges, StaleFeaturesError
from aicash.serving.runtime import (
    FeatureSnapshot,
    FeaturesUnavailableError,
    LoadedModel,
    NoModelLoadedError,
    NotFoundError,
    SignalRuntime,
    UnknownSymbolError,
)
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


def make_runtime(snapshot, split, freshness=None):  # type: ignore[no-untyped-def]
    state = {"split": split}

    def read(symbol: str, timeframe: str) -> FeatureSnapshot:
        if symbol != "EURUSD":
            raise UnknownSymbolError(symbol)
        return snapshot

    runtime = SignalRuntime(read_features=read, load_models=lambda: state["split"], read_weights=dict,
                            cache_ttl_seconds=60, reload_seconds=3600, freshness=freshness or FeatureAgePolicy())
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


def test_a_hit_answers_as_the_miss_did_and_the_collector_walks_no_cached_answer(snapshot, engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A hit answers (and logs) what the miss answered, with its own request id; the cache keeps answers as atoms
    only, so after one collection the garbage collector tracks none of them (a kept Prediction stays tracked)."""
    from aicash.serving.prediction_log import PredictionLog

    runtime, _ = make_runtime(snapshot, [LoadedModel("v1", "production", 100.0, SoftmaxOnLastBar(3))])
    runtime.prediction_log = PredictionLog(engine, spill_path=tmp_path / "spill.jsonl", interval_seconds=0.05)
    first = runtime.predict(PredictRequest(symbol="EURUSD", request_id="miss", indicators={"rsi_value": 41.5}))
    hit = runtime.predict(PredictRequest(symbol="EURUSD", request_id="hit", indicators={"rsi_value": 41.5}))
    assert (first.cached, hit.cached, hit.request_id) == (False, True, "hit")
    assert hit.model_dump(exclude={"cached", "request_id"}) == first.model_dump(exclude={"cached", "request_id"})
    for i in range(200):
        runtime.predict(PredictRequest(symbol="EURUSD", request_id=f"r{i}", indicators={"rsi_value": i / 4 + 0.125}))
    gc.collect()
    assert len(runtime.cache) == 201 and not any(gc.is_tracked(answer) for _, answer in runtime.cache._data.values())
    runtime.close()
    with engine.connect() as conn:
        rows = dict(conn.execute(select(Prediction.request_id, Prediction.output)
                                 .where(Prediction.request_id.in_(["miss", "hit"]))).all())
        features = dict(conn.execute(select(Prediction.request_id, Prediction.features)
                                     .where(Prediction.request_id.in_(["miss", "hit"]))).all())
    assert rows["hit"] == rows["miss"] | {"cached": True, "request_id": "hit"} and features["hit"] == features["miss"]


def test_an_answer_from_its_fields_is_the_one_pydantic_validates() -> None:
    """`Prediction.from_fields` (the runtime's shortcut past `model_construct`) makes the instance that validating
    the same values makes: equal, the same JSON, the same fields set, and its own dict."""
    from aicash.serving.schemas import Prediction as Answer

    fields = {"signal": "BUY", "confidence": 0.5, "probabilities": {"SELL": 0.2, "HOLD": 0.3, "BUY": 0.5},
              "model_version": "v1", "model_status": "production", "composite_score": -0.25, "latency_ms": 0.4,
              "request_id": "r1", "cached": True, "features_as_of": datetime(2024, 5, 1, 13, tzinfo=UTC), "stale": True}
    validated, built = Answer.model_validate(fields), Answer.from_fields(dict(fields))
    assert built == validated == Answer.model_construct(**fields)
    assert built.model_dump_json() == validated.model_dump_json() and built.model_fields_set == set(fields)
    assert built.model_copy(update={"cached": False}).cached is False and built.cached is True


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


def test_answers_without_an_id_get_time_ordered_ids_that_reach_the_log(snapshot, engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from aicash.serving.prediction_log import PredictionLog

    runtime, _ = make_runtime(snapshot, [LoadedModel("v1", "production", 100.0, SoftmaxOnLastBar(0))])
    runtime.prediction_log = PredictionLog(engine, spill_path=tmp_path / "spill.jsonl", interval_seconds=0.05)
    answers = [runtime.predict(PredictRequest(symbol="EURUSD", indicators={"rsi_value": 30 + i})) for i in range(20)]
    given = runtime.predict(PredictRequest(symbol="EURUSD", request_id="client-id", indicators={"rsi_value": 1}))
    runtime.close()

    made = [a.request_id for a in answers]
    assert made == sorted(made) and {uuid.UUID(i).version for i in made} == {7}
    assert given.request_id == "client-id"  # a caller's own id is kept as it is
    with engine.connect() as conn:
        logged = conn.execute(select(Prediction.request_id).order_by(Prediction.id)).scalars().all()
    assert logged == [*made, "client-id"]


# -- broad handlers must not hide bugs (issue "Hardening", fault 4) -------------------------------------------
class FlakyReader:
    """A feature reader that answers once, then raises whatever `fail_with` holds."""

    def __init__(self, snapshot: FeatureSnapshot) -> None:
        self.snapshot = snapshot
        self.fail_with: BaseException | None = None

    def __call__(self, symbol: str, timeframe: str) -> FeatureSnapshot:
        if self.fail_with is not None:
            raise self.fail_with
        return self.snapshot


def _runtime_over(reader: FlakyReader) -> SignalRuntime:
    return SignalRuntime(read_features=reader, load_models=lambda: [LoadedModel("v1", "production", 100.0,
                         SoftmaxOnLastBar(0))], read_weights=dict, cache_ttl_seconds=0, reload_seconds=3600)


def test_not_found_errors_are_the_domains_own(snapshot) -> None:  # type: ignore[no-untyped-def]
    """Only these become 404/503 in the service; a KeyError from a reader's bug is not one of them."""
    runtime, _ = make_runtime(snapshot, [])
    with pytest.raises(NoModelLoadedError):
        runtime.predict(PredictRequest(symbol="EURUSD"))
    runtime.close()
    runtime, _ = make_runtime(snapshot, [LoadedModel("v1", "production", 100.0, SoftmaxOnLastBar(0))])
    with pytest.raises(UnknownSymbolError):
        runtime.predict(PredictRequest(symbol="GBPUSD"))
    runtime.close()

    reader = FlakyReader(snapshot)
    reader.fail_with = KeyError("rsi_value")  # a bug in the reader, on the first read of the series
    runtime = _runtime_over(reader)
    with pytest.raises(KeyError) as raised:
        runtime.predict(PredictRequest(symbol="EURUSD"))
    assert not isinstance(raised.value, NotFoundError)
    runtime.close()


def test_the_service_answers_a_reader_bug_with_a_500_not_a_404(snapshot) -> None:  # type: ignore[no-untyped-def]
    """`_predict` lets a KeyError through (BentoML answers 500 and logs it); the domain's not-found errors stay
    404 (unknown symbol) and 503 (no model)."""
    from types import SimpleNamespace

    from bentos.service import SignalService

    def call(runtime: SignalRuntime, symbol: str):  # type: ignore[no-untyped-def]
        ctx = SimpleNamespace(request=SimpleNamespace(headers={}), response=SimpleNamespace(status_code=200))
        answer = SignalService.inner._predict(SimpleNamespace(runtime=runtime), [PredictRequest(symbol=symbol)], ctx)
        return ctx.response.status_code, answer

    reader = FlakyReader(snapshot)
    runtime = _runtime_over(reader)
    assert call(runtime, "EURUSD")[0] == 200
    reader.fail_with = UnknownSymbolError("GBPUSD 1h: nothing materialized")
    assert call(runtime, "GBPUSD")[0] == 404
    reader.fail_with = KeyError("rsi_value")
    with pytest.raises(KeyError):
        call(runtime, "USDJPY")
    runtime.close()
    empty, _ = make_runtime(snapshot, [])
    assert call(empty, "EURUSD")[0] == 503
    empty.close()


def _outages() -> list[BaseException]:
    import botocore.exceptions
    import psycopg
    import psycopg_pool
    import redis
    import sqlalchemy.exc

    return [
        sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("connection refused")),
        sqlalchemy.exc.InterfaceError("SELECT 1", {}, Exception("connection closed")),
        sqlalchemy.exc.DisconnectionError("gone"),
        psycopg.OperationalError("connection refused"),
        psycopg_pool.PoolTimeout("couldn't get a connection after 30 sec"),
        redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379"),
        redis.TimeoutError("Timeout reading from socket"),
        botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError("timed out"),
    ]


@pytest.mark.parametrize("outage", _outages(), ids=lambda e: type(e).__name__)
def test_an_outage_serves_the_last_read_features(snapshot, outage) -> None:  # type: ignore[no-untyped-def]
    reader = FlakyReader(snapshot)
    runtime = _runtime_over(reader)
    before = runtime.predict(PredictRequest(symbol="EURUSD", request_id="a"))
    reader.fail_with = outage
    during = runtime.predict(PredictRequest(symbol="EURUSD", request_id="a"))  # from the last read
    assert during.probabilities == before.probabilities
    with pytest.raises(FeaturesUnavailableError):  # never read before the outage: nothing to serve
        runtime.predict(PredictRequest(symbol="GBPUSD"))
    runtime.close()


@pytest.mark.parametrize("bug", [TypeError("unsupported operand"), AttributeError("'NoneType' has no 'window'"),
                                 ValueError("could not convert"), ZeroDivisionError("division by zero")],
                         ids=lambda e: type(e).__name__)
def test_a_reader_bug_is_not_served_stale(snapshot, bug) -> None:  # type: ignore[no-untyped-def]
    """A programming error in the reader propagates, even when a last read exists to hide it behind."""
    reader = FlakyReader(snapshot)
    runtime = _runtime_over(reader)
    runtime.predict(PredictRequest(symbol="EURUSD"))
    reader.fail_with = bug
    with pytest.raises(type(bug)):
        runtime.predict(PredictRequest(symbol="EURUSD"))
    runtime.close()


# -- feature freshness ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("timeframe", "bar_seconds"), [("1m", 60), ("15m", 900), ("1h", 3600), ("4h", 14400),
                                                        ("1d", 86400), ("1w", 604800)])
def test_stale_past_max_bars_plus_grace_exactly(timeframe: str, bar_seconds: int) -> None:
    policy = FeatureAgePolicy(max_bars=3, grace_seconds=300)
    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    limit = 3 * bar_seconds + 300
    assert policy.limit_seconds(timeframe) == limit
    assert not policy.is_stale(timeframe, now - timedelta(seconds=limit), now)  # exactly at the limit
    assert policy.is_stale(timeframe, now - timedelta(seconds=limit, microseconds=1), now)  # just past it
    assert not policy.is_stale(timeframe, now, now)
    assert policy.is_stale(timeframe, None, now)  # no bar time: cannot be vouched for
    other = FeatureAgePolicy(max_bars=1, grace_seconds=0)
    assert not other.is_stale(timeframe, now - timedelta(seconds=bar_seconds), now)
    assert other.is_stale(timeframe, now - timedelta(seconds=bar_seconds + 1), now)


def test_ages_and_health_problems_grow_between_reads() -> None:
    ages = FeatureAges(FeatureAgePolicy())
    read_at = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    ages.observe("EURUSD", "1h", read_at)
    ages.observe("BTCUSD", "1m", read_at)
    assert ages.problems(read_at + timedelta(seconds=480)) == []  # 1m: 3 bars + 300 s = 480 s
    [btc] = ages.problems(read_at + timedelta(seconds=481))
    assert btc.startswith("stale features: BTCUSD 1m latest bar 2026-12-06T12:00:00+00:00") and "limit 480 s" in btc
    later = read_at + timedelta(hours=4)
    assert [a.symbol for a in ages.current(later) if a.stale] == ["BTCUSD", "EURUSD"]
    assert {a.symbol: a.age_seconds for a in ages.current(later)} == {"BTCUSD": 14400, "EURUSD": 14400}


def _at(snapshot: FeatureSnapshot, as_of: datetime) -> FeatureSnapshot:
    return FeatureSnapshot(indicators=snapshot.indicators, window=snapshot.window, event_timestamp=as_of)


def test_answers_carry_features_as_of_and_stale(snapshot) -> None:  # type: ignore[no-untyped-def]
    sample_end = load_sample("eurusd-1h")["ts"].iloc[-1].to_pydatetime()
    runtime, _ = make_runtime(_at(snapshot, sample_end), [LoadedModel("v1", "production", 100.0, SoftmaxOnLastBar(0))])
    answer = runtime.predict(PredictRequest(symbol="EURUSD"))
    assert answer.features_as_of == sample_end and answer.stale  # a historical sample is years old
    dumped = answer.model_dump(mode="json")
    assert datetime.fromisoformat(dumped["features_as_of"]) == sample_end and dumped["stale"] is True
    [age] = runtime.feature_ages.current()
    assert (age.symbol, age.timeframe, age.as_of) == ("EURUSD", "1h", sample_end) and age.stale
    runtime.close()


def test_cached_answers_turn_stale_when_their_bar_ages(snapshot) -> None:  # type: ignore[no-untyped-def]
    """The answer cache (60 s here) keeps `features_as_of`; `stale` is judged again for every answer."""
    policy = FeatureAgePolicy(max_bars=1, grace_seconds=0)
    almost = datetime.now(UTC) - timedelta(seconds=3600 - 1.0)  # one second short of the limit
    runtime, _ = make_runtime(_at(snapshot, almost), [LoadedModel("v1", "production", 100.0, SoftmaxOnLastBar(0))],
                              policy)
    request = PredictRequest(symbol="EURUSD", request_id="same", indicators={"rsi_value": 41})
    first = runtime.predict(request)
    assert not first.stale and not first.cached
    time.sleep(1.2)
    again = runtime.predict(request)
    assert again.cached and again.stale and again.features_as_of == almost
    runtime.close()


def test_refuse_stale_features_names_series_bar_and_limit(snapshot) -> None:  # type: ignore[no-untyped-def]
    old = datetime(2024, 3, 1, 17, 0, tzinfo=UTC)
    runtime, _ = make_runtime(_at(snapshot, old), [LoadedModel("v1", "production", 100.0, SoftmaxOnLastBar(0))],
                              FeatureAgePolicy(refuse=True))
    with pytest.raises(StaleFeaturesError) as refused:
        runtime.predict_many([PredictRequest(symbol="EURUSD", timeframe="1h")])
    message = str(refused.value)
    assert "EURUSD 1h" in message and "2024-03-01T17:00:00+00:00" in message and "11100 s" in message
    assert refused.value.retry_after > 0
    runtime.close()
    fresh = datetime.now(UTC) - timedelta(minutes=30)
    runtime, _ = make_runtime(_at(snapshot, fresh), [LoadedModel("v1", "production", 100.0, SoftmaxOnLastBar(0))],
                              FeatureAgePolicy(refuse=True))
    answer = runtime.predict(PredictRequest(symbol="EURUSD"))
    assert not answer.stale and answer.features_as_of == fresh
    runtime.close()


def test_fresh_candles_through_the_online_store_are_not_stale(settings, engine) -> None:  # type: ignore[no-untyped-def]
    """Candles ending at the current hour, ingested and materialized, read through the service's online reader."""
    from aicash.market.ingest import ingest_frame
    from aicash.market.synth import synth_symbol
    from bentos.wiring import OnlineFeatureReader
    from features.store import apply, materialize

    bars = 300
    last = pd.Timestamp.now(tz="UTC").floor("1h")
    candles = synth_symbol(bars, np.random.default_rng(3), last - pd.Timedelta(hours=bars - 1), pd.Timedelta("1h"))
    ingest_frame(engine, candles, "FRESH", "1h")
    ingest_frame(engine, load_sample("eurusd-1h"), "EURUSD", "1h")
    apply(settings)
    materialize(settings)
    runtime = SignalRuntime(read_features=OnlineFeatureReader(settings),
                            load_models=lambda: [LoadedModel("v1", "production", 100.0, SoftmaxOnLastBar(0))],
                            read_weights=dict, reload_seconds=3600)
    fresh, old = runtime.predict_many([PredictRequest(symbol="FRESH"), PredictRequest(symbol="EURUSD")])
    assert fresh.features_as_of == last.to_pydatetime() and not fresh.stale
    assert old.features_as_of == load_sample("eurusd-1h")["ts"].iloc[-1].to_pydatetime() and old.stale
    assert [p.split(" latest bar")[0] for p in runtime.feature_ages.problems()] == ["stale features: EURUSD 1h"]
    runtime.close()
