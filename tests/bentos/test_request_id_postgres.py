"""In cluster mode, where `predictions.request_id` is a real VARCHAR(64): a too-long `X-Request-Id` is refused with a
400 naming the header (it used to stop the prediction log for good), and the predictions after it are all logged."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from aicash.db.engine import make_engine
from aicash.db.models import Prediction
from aicash.serving.keys import create_key
from aicash.serving.schemas import EXAMPLE_INPUT
from tests.support.cluster_service import cluster_home, ready, serving, wait_for


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.timeout(360)
def test_a_long_request_id_header_is_refused_and_20_predictions_are_logged(  # type: ignore[no-untyped-def]
    fresh_postgres_db, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env, _, _ = cluster_home(home, fresh_postgres_db, PREDICTION_CACHE_TTL_SECONDS="0")
    engine = make_engine(fresh_postgres_db)
    key = create_key(engine, "frontend", actor="test")
    try:
        with serving(home, env) as (proc, url), httpx.Client(base_url=url, headers={"X-API-Key": key},
                                                               timeout=15) as client:
            wait_for(lambda: proc.poll() is None and ready(url), 120, "the service is ready")
            refused = client.post("/predict", json=EXAMPLE_INPUT, headers={"X-Request-Id": "h" * 100})
            assert refused.status_code == 400 and "X-Request-Id" in refused.json()["error"], refused.text
            sent = [f"pg-hdr-{i}" for i in range(20)]
            for request_id in sent:
                answer = client.post("/predict", json=EXAMPLE_INPUT, headers={"X-Request-Id": request_id})
                assert answer.status_code == 200, answer.text
            wait_for(lambda: client.get("/health").json()["prediction_log"]["pending"] == 0, 20, "the log is written")
            deadline = time.monotonic() + 10
            while True:
                with engine.connect() as conn:
                    logged = sorted(conn.execute(select(Prediction.request_id)).scalars())
                if logged == sorted(sent) or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert logged == sorted(sent)
            state = client.get("/health").json()["prediction_log"]
            assert (state["healthy"], state["pending"], state["dead_letters"]) == (True, 0, 0), state
    finally:
        engine.dispose()
