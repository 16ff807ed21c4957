"""The inference service over real HTTP: the frontend's payload, batch, auth, rate limit, CORS, validation,
canary split, cache, hot reload after promotion, indicators, metrics and the prediction log."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from aicash.db.engine import make_engine
from aicash.indicators import INDICATOR_COLUMNS, with_indicators
from aicash.market.samples import load_sample
from aicash.serving.schemas import EXAMPLE_INPUT
from tests.support.service import start_service, stop_service


def test_frontend_payload_as_it_is(service) -> None:  # type: ignore[no-untyped-def]
    answer = service.post("/predict", EXAMPLE_INPUT)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["signal"] in {"BUY", "SELL", "HOLD"}
    assert set(body["probabilities"]) == {"BUY", "SELL", "HOLD"} and abs(sum(body["probabilities"].values()) - 1) < 1e-5
    assert body["confidence"] == max(body["probabilities"].values())
    assert body["model_version"] in {service.production, service.canary}
    assert "forced past the gate" in body["model_status"]  # never passed off as approved
    assert -1 <= body["composite_score"] <= 1 and body["latency_ms"] > 0
    # the EURUSD sample ends years ago: the answer says which bar it used, and that it is stale
    assert pd.Timestamp(body["features_as_of"]) == load_sample("eurusd-1h")["ts"].iloc[-1]
    assert body["stale"] is True


def test_batch(service) -> None:  # type: ignore[no-untyped-def]
    reqs = [{"symbol": "EURUSD", "indicators": {"rsi_value": r}} for r in (20, 50, 80)]
    answer = service.post("/predict/batch", {"requests": reqs})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()) == 3


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"X-API-Key": "aic_wrong"}, 401), ({"X-API-Key": "revoked"}, 401), ({"X-API-Key": "bearer"}, 200)],
)
def test_auth(service, headers, status) -> None:  # type: ignore[no-untyped-def]
    if headers.get("X-API-Key") == "revoked":
        headers = {"X-API-Key": service.revoked_key}
    elif headers.get("X-API-Key") == "bearer":
        headers = {"Authorization": f"Bearer {service.key}"}
    answer = httpx.post(service.url + "/predict", json=EXAMPLE_INPUT, headers=headers, timeout=30)
    assert answer.status_code == status
    if status == 401:
        assert "API key" in answer.json()["error"]


def test_rate_limit_answers_429_with_retry_after(service) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(timeout=30) as client:
        statuses = []
        for _ in range(320):  # the burst is 300 per key
            r = client.get(service.url + "/weights", headers={"X-API-Key": service.limited_key})
            statuses.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["Retry-After"]) >= 1 and "rate limit" in r.json()["error"]
                break
    assert 429 in statuses and statuses.count(200) >= 290
    assert service.get("/weights").status_code == 200  # other keys are not affected


def test_cors_preflight(service) -> None:  # type: ignore[no-untyped-def]
    allowed = httpx.options(service.url + "/predict", headers={
        "Origin": "https://app.aicash.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-api-key"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.aicash.example"
    denied = httpx.options(service.url + "/predict", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert denied.headers.get("access-control-allow-origin") != "https://evil.example"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"symbol": "EURUSD", "indicators": {"rsi_value": 165}}, "rsi_value"),
        ({"symbol": "EURUSD", "indicators": {"rsi_valu": 65}}, "rsi_valu"),
        ({"symbol": "EURUSD", "extra": 1}, "extra"),
        ({"symbol": "eur/usd"}, "symbol"),
        ({"symbol": "X" * 10_000}, "symbol"),
        ({"indicators": {"rsi_value": 50}}, "symbol"),
        ({"symbol": "EURUSD", "indicators": {"adx_value": "strong"}}, "adx_value"),
        ({"symbol": "EURUSD", "timeframe": "7h"}, "timeframe"),
    ],
)
def test_validation_names_the_field(service, body, field) -> None:  # type: ignore[no-untyped-def]
    answer = service.post("/predict", body)
    assert answer.status_code == 400, answer.text
    assert field in answer.text


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        ('{"symbol": "EURUSD", "indicators": {"rsi_value": NaN}}', "application/json", 400),
        ('{"symbol": "EURUSD", "indicators": {"rsi_value": Infinity}}', "application/json", 400),
        ("", "application/json", 400),
        ("symbol=EURUSD", "application/x-www-form-urlencoded", 415),
        ('{"symbol": "EURUSD", "pad": "' + "x" * 300_000 + '"}', "application/json", 413),
    ],
)
def test_malformed_bodies_get_4xx(service, content, content_type, status) -> None:  # type: ignore[no-untyped-def]
    answer = httpx.post(service.url + "/predict", content=content, timeout=30,
                        headers={"X-API-Key": service.key, "Content-Type": content_type})
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]


def test_unknown_symbol_is_404(service) -> None:  # type: ignore[no-untyped-def]
    answer = service.post("/predict", {"symbol": "GBPUSD"})
    assert answer.status_code == 404 and "GBPUSD" in answer.json()["error"]


def test_canary_split_and_cache(service) -> None:  # type: ignore[no-untyped-def]
    versions = []
    for chunk in range(4):
        reqs = [{"symbol": "EURUSD", "request_id": f"split-{chunk}-{i}", "indicators": {"rsi_value": (i % 97) + 1}}
                for i in range(250)]
        answer = service.post("/predict/batch", {"requests": reqs})
        assert answer.status_code == 200, answer.text
        versions += [a["model_version"] for a in answer.json()]
    share = versions.count(service.canary) / len(versions)
    assert 0.25 < share < 0.35, share  # the registry says 30 %

    fresh = {"symbol": "EURUSD", "request_id": "cache-me", "indicators": {"rsi_value": 33.3, "stoch_k": 12.5}}
    first = service.post("/predict", fresh).json()
    again = service.post("/predict", fresh).json()
    assert not first["cached"] and again["cached"] and again["probabilities"] == first["probabilities"]
    metrics = httpx.get(service.url + "/metrics").text
    assert "aicash_prediction_cache_hits_total" in metrics
    assert 'aicash_request_latency_seconds_bucket{endpoint="/predict"' in metrics
    assert f'model_version="{service.canary}"' in metrics


def _samples(service) -> dict[tuple[str, frozenset], float]:  # type: ignore[no-untyped-def]
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(service.url + "/metrics").text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, lab), v in samples.items() if n == name and set(labels.items()) <= lab)


def test_metrics_count_predictions_by_signal_and_version_cache_hits_and_refusals(service) -> None:  # type: ignore[no-untyped-def]
    before = _samples(service)
    answers = [service.post("/predict", {"symbol": "EURUSD", "request_id": f"metrics-{i}",
                                         "indicators": {"rsi_value": 10.37 + i, "stoch_k": 7.77}}).json()
               for i in range(12)]  # values no other test sends: none is in the cache yet
    repeat = service.post("/predict", {"symbol": "EURUSD", "request_id": "metrics-0",
                                       "indicators": {"rsi_value": 10.37, "stoch_k": 7.77}})
    assert repeat.json()["cached"]
    assert httpx.post(service.url + "/predict", json=EXAMPLE_INPUT, timeout=30).status_code == 401  # no key
    after = _samples(service)

    for signal in {a["signal"] for a in answers}:
        for version in {a["model_version"] for a in answers}:
            expected = sum(1 for a in answers if (a["signal"], a["model_version"]) == (signal, version))
            expected += (signal, version) == (answers[0]["signal"], answers[0]["model_version"])  # the cached one
            got = (_total(after, "aicash_predictions_total", signal=signal, model_version=version)
                   - _total(before, "aicash_predictions_total", signal=signal, model_version=version))
            assert got == expected, (signal, version)
    hits = "aicash_prediction_cache_hits_total"
    assert _total(after, hits) - _total(before, hits) == 1
    refused = (_total(after, "aicash_rejected_requests_total", reason="unauthenticated")
               - _total(before, "aicash_rejected_requests_total", reason="unauthenticated"))
    assert refused == 1
    predicted = (_total(after, "aicash_request_latency_seconds_count", endpoint="/predict")
                 - _total(before, "aicash_request_latency_seconds_count", endpoint="/predict"))
    assert predicted == 13


def test_each_worker_exports_its_process_metrics(service) -> None:  # type: ignore[no-untyped-def]
    """prometheus-client's process and GC metrics, per live worker (label pid): the pid is a running process of
    the service and its resident memory is that process's own."""
    samples = _samples(service)
    rss = {dict(labels)["pid"]: value for (name, labels), value in samples.items()
           if name == "process_resident_memory_bytes"}
    assert rss, "no process_resident_memory_bytes on /metrics"
    for pid, value in rss.items():
        status = Path(f"/proc/{pid}/status").read_text()
        resident = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) * 1024
        assert 0.5 * resident < value < 2 * resident, (pid, value, resident)  # sampled every 5 s: close, not equal
    for name in ("process_cpu_seconds_total", "process_open_fds", "process_start_time_seconds",
                 "python_gc_collections_total"):
        assert {dict(labels)["pid"] for (n, labels) in samples if n == name} == set(rss), name


def test_models_weights_health_and_openapi(service) -> None:  # type: ignore[no-untyped-def]
    models = service.get("/models").json()["models"]
    assert {m["version"] for m in models} >= {service.production}
    assert all(m["forced"] and "forced" in m["label"] for m in models)
    assert {m["version"]: m["family"] for m in models} == {service.production: "lstm", service.canary: "lightgbm"}
    # the LSTM's forward pass runs in ONNX Runtime (checked against TorchScript at load); LightGBM's own path
    assert {m["version"]: m["runtime"] for m in models} == {service.production: "onnxruntime",
                                                            service.canary: "torchscript"}
    # the LSTM answers windows with a seen prefix by its last step; LightGBM runs every window
    assert {m["version"]: m["last_step"] for m in models} == {service.production: True, service.canary: False}
    assert set(service.get("/weights").json()["weights"]) == {"rsi", "adx_trend", "ema_cross", "macd", "bollinger",
                                                               "stochastic"}
    service.post("/predict", EXAMPLE_INPUT)  # the service has read EURUSD 1h: its stale features degrade /health
    health = httpx.get(service.url + "/health")
    assert health.status_code == 200 and health.json()["status"] == "degraded", health.text
    last_bar = load_sample("eurusd-1h")["ts"].iloc[-1].isoformat()
    [stale] = health.json()["problems"]
    assert stale.startswith(f"stale features: EURUSD 1h latest bar {last_bar} is ") and "(limit 11100 s)" in stale
    assert httpx.get(service.url + "/livez").status_code == 200
    spec = httpx.get(service.url + "/docs.json").json()
    assert {"/predict", "/predict/batch", "/indicators"} <= set(spec["paths"])
    prediction = spec["components"]["schemas"]["Prediction"]["properties"]
    assert "latest bar" in prediction["features_as_of"]["description"]
    assert "MAX_FEATURE_AGE_BARS" in prediction["stale"]["description"]


def test_feature_age_gauge_is_current_at_scrape_time(service) -> None:  # type: ignore[no-untyped-def]
    service.post("/predict", EXAMPLE_INPUT)
    series = {"symbol": "EURUSD", "timeframe": "1h"}
    first = _samples(service)
    time.sleep(1.1)
    second = _samples(service)
    age = _total(first, "aicash_feature_age_seconds", **series)
    expected = pd.Timestamp.now(tz="UTC") - load_sample("eurusd-1h")["ts"].iloc[-1]
    assert abs(age - expected.total_seconds()) < 60
    assert _total(second, "aicash_feature_age_seconds", **series) - age >= 1  # computed at scrape time
    assert _total(first, "aicash_feature_age_limit_seconds", **series) == 3 * 3600 + 300


def test_refuse_stale_features_answers_503_with_retry_after(service, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A second service on a copy of the home, with REFUSE_STALE_FEATURES=true."""
    home = shutil.copytree(service.env["AICASH_HOME"], tmp_path / "home")
    database = {k: v for k, v in service.env.items() if k == "DATABASE_URL"}  # the same database in cluster mode
    running = start_service(home, {"REFUSE_STALE_FEATURES": "true", **database})
    try:
        answer = httpx.post(running.url + "/predict", json=EXAMPLE_INPUT, headers={"X-API-Key": service.key},
                            timeout=30)
    finally:
        stop_service(running)
    assert answer.status_code == 503, answer.text
    assert int(answer.headers["Retry-After"]) >= 1
    last_bar = load_sample("eurusd-1h")["ts"].iloc[-1].isoformat()
    assert all(part in answer.json()["error"] for part in ("EURUSD 1h", last_bar, "11100 s")), answer.text


def test_indicators_match_the_training_code(service) -> None:  # type: ignore[no-untyped-def]
    candles = load_sample("eurusd-1h").iloc[:120]
    rows = candles[["ts", "open", "high", "low", "close", "volume"]].itertuples(index=False)
    payload = {"candles": [{"timestamp": ts.isoformat(), "open": o, "high": h, "low": lo, "close": c, "volume": v}
                           for ts, o, h, lo, c, v in rows]}
    answer = service.post("/indicators", payload)
    assert answer.status_code == 200, answer.text
    got = pd.DataFrame(answer.json()["indicators"]).dropna()
    expected = with_indicators(candles)
    assert len(got) == len(expected) == 120 - 49
    np.testing.assert_allclose(got[list(INDICATOR_COLUMNS)].to_numpy(), expected[list(INDICATOR_COLUMNS)].to_numpy(),
                               rtol=1e-12)


def test_predictions_are_logged(service) -> None:  # type: ignore[no-untyped-def]
    service.post("/predict", EXAMPLE_INPUT | {"request_id": "logged-1"})
    engine = make_engine(service.database_url)
    deadline = time.monotonic() + 10
    row = None
    while row is None and time.monotonic() < deadline:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT model_version, features FROM predictions WHERE request_id = 'logged-1'"))\
                .first()
        time.sleep(0.2)
    engine.dispose()
    assert row is not None and row[0] in {service.production, service.canary}


def test_a_bad_request_id_header_is_refused_and_the_log_goes_on(service) -> None:  # type: ignore[no-untyped-def]
    """X-Request-Id follows the body's request_id rule: a 100-character one is a 400 naming the header (it would
    not fit `predictions.request_id`); the predictions after it are all logged."""
    refused = service.post("/predict", EXAMPLE_INPUT, headers={"X-Request-Id": "h" * 100})
    assert refused.status_code == 400, refused.text
    assert "X-Request-Id" in refused.json()["error"]
    bad_chars = service.post("/predict", EXAMPLE_INPUT, headers={"X-Request-Id": "no spaces"})
    assert bad_chars.status_code == 400 and "X-Request-Id" in bad_chars.json()["error"]
    sent = [f"hdr-{time.time_ns()}-{i}" for i in range(20)]
    for request_id in sent:
        answer = service.post("/predict", EXAMPLE_INPUT, headers={"X-Request-Id": request_id})
        assert answer.status_code == 200 and answer.json()["request_id"] == request_id, answer.text
    engine = make_engine(service.database_url)
    deadline = time.monotonic() + 15
    logged: list[str] = []
    while len(logged) < 20 and time.monotonic() < deadline:
        with engine.connect() as conn:
            logged = list(conn.execute(text("SELECT request_id FROM predictions WHERE request_id LIKE 'hdr-%'"))
                          .scalars())
        time.sleep(0.2)
    engine.dispose()
    assert sorted(logged) == sorted(sent)
    assert "h" * 100 not in logged
    health = httpx.get(service.url + "/health").json()  # other tests here reuse request ids: those are counted
    assert isinstance(health["prediction_log"]["dead_letters"], int), health
    metrics = httpx.get(service.url + "/metrics").text
    assert any(line.startswith("aicash_prediction_log_dead_letters_total") for line in metrics.splitlines())


def test_held_features_answer_on_the_event_loop_and_a_store_read_on_a_worker_thread(service) -> None:  # type: ignore[no-untyped-def]
    """The first request after a series' features expired (held for 1 s) reads the store on a worker thread; the
    next ones, answered from memory, run on the event loop (`aicash_predict_dispatch_total`)."""
    body = {"symbol": "EURUSD", "indicators": {"rsi_value": 41.3}}
    time.sleep(1.2)  # whatever earlier tests read has expired
    before = _samples(service)
    answers = [service.post("/predict", body | {"request_id": f"dispatch-{i}"}) for i in range(6)]
    after = _samples(service)
    assert [a.status_code for a in answers] == [200] * 6, answers[0].text

    def added(on: str) -> float:
        name = "aicash_predict_dispatch_total"
        return _total(after, name, on=on) - _total(before, name, on=on)

    assert added("worker_thread") == 1
    assert added("event_loop") == 5


def _lock_online_store(service) -> Callable[[], None]:  # type: ignore[no-untyped-def]
    """Take the online store's tables so that reads of it wait; returns the release."""
    if service.database_url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(Path(service.env["AICASH_HOME"]) / "features" / "online.db", isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        return lambda: (conn.execute("ROLLBACK"), conn.close())
    engine = make_engine(service.database_url)
    conn = engine.connect()
    tables = conn.execute(text("SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                               "WHERE schemaname = 'feast'")).scalars().all()
    conn.execute(text(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE"))
    return lambda: (conn.rollback(), conn.close(), engine.dispose())


def test_a_store_read_that_waits_does_not_hold_up_the_event_loop(service) -> None:  # type: ignore[no-untyped-def]
    """A request whose features expired waits for the store on a worker thread: meanwhile the worker's event loop
    answers /healthz at once, and the request answers once the store does."""
    from concurrent.futures import ThreadPoolExecutor

    body = {"symbol": "EURUSD", "indicators": {"rsi_value": 42.7}}
    assert service.post("/predict", body).status_code == 200
    time.sleep(1.2)  # the features held for EURUSD expire
    release = _lock_online_store(service)
    try:
        with ThreadPoolExecutor(1) as pool:
            start = time.perf_counter()
            other = {"symbol": "EURUSD", "indicators": {"rsi_value": 42.8}}  # not in the prediction cache
            waiting = pool.submit(service.post, "/predict", other)
            time.sleep(0.3)
            assert not waiting.done()  # the read waits for the lock
            health_start = time.perf_counter()
            assert httpx.get(service.url + "/healthz", timeout=5).status_code == 200
            health_seconds = time.perf_counter() - health_start
            assert health_seconds < 0.25, f"/healthz took {health_seconds:.2f} s behind the store read"
            time.sleep(0.7)
            assert not waiting.done()
            release()
            release = lambda: None  # noqa: E731
            answer = waiting.result(timeout=30)
            waited = time.perf_counter() - start
    finally:
        release()
    assert answer.status_code == 200, answer.text
    assert waited >= 1.0


def test_metrics_count_the_windows_answered_by_the_last_step(service) -> None:  # type: ignore[no-untyped-def]
    """`aicash_last_step_windows_total{model_version,path}`: every window the production LSTM answers is counted once,
    by the last step once its prefix has been seen twice (earlier tests and the first requests here), else by the
    full model; a request that gives `ema_50` (the anchor every bar is scaled by) takes the full model."""
    name = "aicash_last_step_windows_total"
    before = _samples(service)
    answers = [service.post("/predict", {"symbol": "EURUSD", "indicators": {"rsi_value": 61.25 + i}}).json()
               for i in range(10)]  # values no other test sends: none is cached
    anchored = [service.post("/predict", {"symbol": "EURUSD", "indicators": {"ema_50": 1.2345 + i / 1000}}).json()
                for i in range(4)]
    after = _samples(service)

    def added(path: str) -> float:
        return (_total(after, name, model_version=service.production, path=path)
                - _total(before, name, model_version=service.production, path=path))

    production = sum(a["model_version"] == service.production for a in answers)
    given_anchor = sum(a["model_version"] == service.production for a in anchored)
    assert production + given_anchor > 0
    assert added("last_step") + added("full_model") == production + given_anchor
    assert added("last_step") >= production - 2 and added("full_model") >= given_anchor
    assert not any(lab for (n, lab) in after if n == name and ("model_version", service.canary) in lab)


def test_promotion_is_picked_up_without_restart(service) -> None:  # type: ignore[no-untyped-def]
    """Runs last in this module: it changes the registry."""
    from aicash.registry import promote

    engine = make_engine(service.database_url)
    promote(engine, service.canary, 100, force=True, reason="test: full promotion", actor="test")
    engine.dispose()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        models = service.get("/models").json()["models"]
        if [m["version"] for m in models] == [service.canary]:
            break
        time.sleep(0.5)
    assert [m["version"] for m in models] == [service.canary]
    answers = service.post("/predict/batch", {"requests": [
        {"symbol": "EURUSD", "request_id": f"after-{i}"} for i in range(50)]}).json()
    assert {a["model_version"] for a in answers} == {service.canary}
