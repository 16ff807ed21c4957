"""The database goes down and comes back, over HTTP, in cluster mode (registry, prediction log, API keys and Feast's
online store all on one PostgreSQL): predictions keep answering from the loaded model and the online features read
last, /health says degraded with the prediction-log rows pending, and afterwards every prediction made meanwhile
is in `predictions` exactly once. And a service started while the database is down comes up on the model its Bento
carries, stays out of the load balancer (/readyz 503) and answers 503 with Retry-After until the database answers,
then serves the registry's split without a restart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from aicash.db.engine import make_engine
from aicash.db.models import Prediction
from aicash.serving.keys import create_key
from aicash.serving.schemas import EXAMPLE_INPUT
from tests.support import REPO
from tests.support.cluster_service import cluster_home, ready, serving, wait_for
from tests.support.service import environment, home_env


def _healthy(health: dict) -> bool:  # type: ignore[type-arg]
    """Nothing degraded but the stale features of the historical EURUSD sample (always stale, by design)."""
    return all(p.startswith("stale features: EURUSD 1h ") for p in health["problems"])


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(360)
def test_database_down_and_back(stoppable_postgres, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    env, _, _ = cluster_home(home, stoppable_postgres.url, PREDICTION_CACHE_TTL_SECONDS="0")
    engine = make_engine(stoppable_postgres.url)
    key = create_key(engine, "frontend", actor="test")
    try:
        with serving(home, env) as (proc, url):
            _outage_while_serving(proc, url, key, stoppable_postgres, engine)
    finally:
        engine.dispose()


def _outage_while_serving(proc, url: str, key: str, stoppable_postgres, engine) -> None:  # type: ignore[no-untyped-def]
    client = httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=15)
    sent: list[str] = []

    def predict(tag: str) -> httpx.Response:
        request_id = f"outage-{tag}-{len(sent)}"
        sent.append(request_id)
        return client.post("/predict", json=EXAMPLE_INPUT | {"request_id": request_id})

    def health() -> dict:
        return client.get("/health").json()

    try:
        wait_for(lambda: proc.poll() is None and ready(url), 120, "the service is ready")
        for _ in range(5):  # the service reads the features and verifies the key while the database is up
            assert predict("before").status_code == 200

        stoppable_postgres.stop()
        during = [predict("during") for _ in range(20)]
        assert [r.status_code for r in during] == [200] * 20, during[-1].text
        assert all(r.json()["signal"] in {"BUY", "SELL", "HOLD"} for r in during)
        def degraded() -> bool:
            state = health()
            registry_down = any(p.startswith("model registry unreachable") for p in state["problems"])
            return state["status"] == "degraded" and registry_down and state["prediction_log"]["healthy"] is False

        wait_for(degraded, 20, "/health reports degraded: registry unreachable, prediction log behind")
        state = health()
        assert state["prediction_log"]["pending"] >= 20  # at least the answers made during the outage
        assert state["models"], state  # the loaded models are kept

        stoppable_postgres.start()
        wait_for(lambda: _healthy(health()) and health()["prediction_log"]["pending"] == 0, 30,
                  "the prediction log catches up once the database is back")
        assert predict("after").status_code == 200
        wait_for(lambda: health()["prediction_log"]["pending"] == 0, 10, "the last prediction is written")

        with engine.connect() as conn:
            counts = dict(conn.execute(
                select(Prediction.request_id, func.count()).where(Prediction.request_id.like("outage-%"))
                .group_by(Prediction.request_id)
            ).all())
        assert counts == dict.fromkeys(sent, 1)  # every prediction, made before, during or after, exactly once
    finally:
        client.close()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(360)
def test_service_started_while_the_database_is_down(stoppable_postgres, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    env, production, canary = cluster_home(home, stoppable_postgres.url)
    subprocess.run(  # noqa: S603 - what `aicash serve --build` does first: the Bento's copy of the model
        [sys.executable, "-c", "from aicash.settings import load_settings; from bentos.package import export_model; "
         "export_model(load_settings())"], cwd=REPO, env=env, check=True, timeout=120)
    engine = make_engine(stoppable_postgres.url)
    key = create_key(engine, "frontend", actor="test")
    stoppable_postgres.stop()
    try:
        with serving(home, env) as (proc, url):
            _start_during_outage(proc, url, key, stoppable_postgres, engine, production, canary)
    finally:
        engine.dispose()


def _start_during_outage(proc, url: str, key: str, stoppable_postgres, engine, production: str,  # type: ignore[no-untyped-def]
                         canary: str) -> None:
    client = httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=15)
    try:
        wait_for(lambda: proc.poll() is None and _live(url), 120, "the service is alive")
        assert httpx.get(url + "/readyz", timeout=5).status_code == 503  # kept out of the load balancer
        health = client.get("/health").json()
        assert health["status"] == "degraded" and any("unreachable" in p for p in health["problems"]), health
        assert health["models"] == [[production, 100.0]], health  # the Bento's copy of the production model
        refused = client.post("/predict", json=EXAMPLE_INPUT | {"request_id": "start-during"})
        assert refused.status_code == 503 and refused.headers["Retry-After"], refused.text
        assert "database is unreachable" in refused.json()["error"], refused.text

        stoppable_postgres.start()
        wait_for(lambda: ready(url), 60, "ready once the database answers")
        answer = client.post("/predict", json=EXAMPLE_INPUT | {"request_id": "start-after"})
        assert answer.status_code == 200, answer.text
        wait_for(lambda: client.get("/health").json()["models"] == [[canary, 30.0], [production, 70.0]], 30,
                  "the registry's split replaces the bundled model")
        assert _healthy(client.get("/health").json())
        wait_for(lambda: client.get("/health").json()["prediction_log"]["pending"] == 0, 10, "the log is written")
        with engine.connect() as conn:
            logged = conn.execute(select(Prediction.request_id).where(Prediction.request_id.like("start-%"))).all()
        assert [r for (r,) in logged] == ["start-after"]  # the refused request was never predicted
    finally:
        client.close()


def _live(url: str) -> bool:
    try:
        return httpx.get(url + "/livez", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(360)
def test_started_while_the_database_is_down_it_answers_with_redis_online_store(  # type: ignore[no-untyped-def]
    stoppable_postgres, redis_url, s3_bucket, moto_endpoint, tmp_path: Path
) -> None:
    """FEAST_ONLINE_STORE=redis: features from Redis, the Feast registry and the key snapshot from the bucket, the
    model and weights from the Bento. Started with PostgreSQL down, the service is ready and answers; the log of
    what it answered reaches `predictions` exactly once when the database returns, and the registry's split
    replaces the bundled model, without a restart."""
    from aicash.registry import store_for
    from aicash.serving.key_snapshot import publish_key_snapshot
    from aicash.serving.keys import revoke_key
    from aicash.settings import load_settings

    home = tmp_path / "home"
    env, production, canary = cluster_home(
        home, stoppable_postgres.url, PREDICTION_CACHE_TTL_SECONDS="0", USE_S3_STORAGE="true", S3_BUCKET=s3_bucket,
        S3_ENDPOINT_URL=moto_endpoint, FEAST_ONLINE_STORE="redis", REDIS_URL=redis_url,
    )
    subprocess.run(  # noqa: S603 - what `aicash serve --build` does first: the Bento's copy of the model
        [sys.executable, "-c", "from aicash.settings import load_settings; from bentos.package import export_model; "
         "export_model(load_settings())"], cwd=REPO, env=env, check=True, timeout=120)
    engine = make_engine(stoppable_postgres.url)
    key, revoked = create_key(engine, "frontend", actor="test"), create_key(engine, "gone", actor="test")
    revoke_key(engine, "gone", actor="test")
    with environment(env):  # what `aicash keys create/revoke` do after the database write
        publish_key_snapshot(engine, store_for(load_settings()))
    stoppable_postgres.stop()
    try:
        with serving(home, env) as (proc, url):
            _answers_during_outage(proc, url, key, revoked, stoppable_postgres, engine, production, canary)
    finally:
        engine.dispose()


def _answers_during_outage(proc, url: str, key: str, revoked: str, stoppable_postgres, engine,  # type: ignore[no-untyped-def]
                           production: str, canary: str) -> None:
    client = httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=15)
    sent: list[str] = []
    try:
        wait_for(lambda: proc.poll() is None and ready(url), 120, "ready with the database down")
        for i in range(20):
            sent.append(f"redis-during-{i}")
            answer = client.post("/predict", json=EXAMPLE_INPUT | {"request_id": sent[-1]})
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["model_version"] == production and body["model_status"] == "bundled", body
            assert body["signal"] in {"BUY", "SELL", "HOLD"}
        weights = client.get("/weights").json()["weights"]
        assert weights and any(weights.values()), weights  # the Bento's weights, not an empty set
        for bad in (revoked, "aic_" + "x" * 43):
            refused = client.post("/predict", json=EXAMPLE_INPUT, headers={"X-API-Key": bad})
            assert refused.status_code == 401, refused.text  # the snapshot tells valid from invalid
        health = client.get("/health").json()
        assert health["status"] == "degraded", health
        assert any(p.startswith("model registry unreachable") for p in health["problems"]), health
        assert health["prediction_log"]["pending"] >= 20, health

        stoppable_postgres.start()
        wait_for(lambda: client.get("/health").json()["models"] == [[canary, 30.0], [production, 70.0]], 60,
                  "the registry's split replaces the bundled model")
        wait_for(lambda: _healthy(client.get("/health").json()), 30, "healthy once the database is back")
        wait_for(lambda: client.get("/health").json()["prediction_log"]["pending"] == 0, 30, "the log is written")
        with engine.connect() as conn:
            counts = dict(conn.execute(
                select(Prediction.request_id, func.count()).where(Prediction.request_id.like("redis-%"))
                .group_by(Prediction.request_id)
            ).all())
        assert counts == dict.fromkeys(sent, 1)  # every answer made during the outage, exactly once
    finally:
        client.close()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(240)
def test_admin_operations_answer_503_while_the_database_is_down(stoppable_postgres, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """No model, no features: only the schema and an admin key, so the service starts in seconds. With the
    database stopped every admin operation answers 503 JSON with Retry-After, never a bare 500."""
    from aicash.db import migrate

    home = tmp_path / "home"
    home.mkdir()
    env = home_env(home, {"DATABASE_URL": stoppable_postgres.url, "RATE_LIMIT_PER_MINUTE": "100000"})
    engine = make_engine(stoppable_postgres.url)
    migrate.upgrade(engine)
    key = create_key(engine, "ops", admin=True, actor="test")
    engine.dispose()
    calls = [("POST", "/train", {"symbols": ["EURUSD"]}), ("GET", "/training-status", None),
             ("POST", "/models/v1/promote", {"traffic_percentage": 100, "force": True, "reason": "outage test"}),
             ("POST", "/models/rollback", {"reason": "outage test"})]
    with serving(home, env) as (proc, url), httpx.Client(base_url=url, headers={"X-API-Key": key},
                                                           timeout=15) as client:
        wait_for(lambda: proc.poll() is None and _live(url), 120, "the service is alive")
        assert client.get("/training-status").status_code == 200  # the key is verified while the database is up
        stoppable_postgres.stop()
        for method, path, body in calls:
            answer = client.request(method, path, json=body)
            assert answer.status_code == 503, (path, answer.status_code, answer.text)
            assert answer.headers["Retry-After"], path
            assert answer.headers["content-type"].startswith("application/json"), path
            assert isinstance(answer.json()["error"], str) and answer.json()["error"], path
