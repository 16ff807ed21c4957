"""The prediction log writes off the request path, in batches, and loses nothing through an outage."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from sqlalchemy import func, select

from aicash.db import migrate
from aicash.db.engine import make_engine
from aicash.db.models import Prediction
from aicash.serving.prediction_log import PredictionLog


def row(i: int) -> dict:
    return {
        "request_id": f"req-{i}-{uuid.uuid4().hex[:6]}", "symbol": "EURUSD", "request": {"i": i},
        "features": {"rsi_value": 50.0}, "output": {"signal": "HOLD"}, "model_version": "v1", "latency_ms": 1.0,
    }


def count(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Prediction)).scalar_one()


def test_rows_arrive_in_batches(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plog = PredictionLog(engine, spill_path=tmp_path / "spill.jsonl", batch_size=50, interval_seconds=0.05)
    for i in range(120):
        plog.record(row(i))
    deadline = time.monotonic() + 10
    while count(engine) < 120 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count(engine) == 120
    assert plog.close() and plog.written == 120


def test_database_down_then_back_loses_nothing_and_duplicates_nothing(stoppable_postgres, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(stoppable_postgres.url)
    migrate.upgrade(engine)
    plog = PredictionLog(engine, spill_path=tmp_path / "spill.jsonl", batch_size=20, interval_seconds=0.05,
                         max_memory_rows=30)
    rows = [row(i) for i in range(100)]
    for r in rows[:10]:
        plog.record(r)
    assert plog.flush(5) and count(engine) == 10

    stoppable_postgres.stop()
    for r in rows[10:]:
        plog.record(r)  # answers go on: recording never blocks on the database
    time.sleep(0.5)
    assert not plog.healthy and plog.pending == 90
    assert (tmp_path / "spill.jsonl").exists()  # beyond max_memory_rows the oldest rows went to disk

    stoppable_postgres.start()
    assert plog.close(timeout=20)
    assert count(engine) == 100
    with engine.connect() as conn:
        ids = set(conn.execute(select(Prediction.request_id)).scalars())
    assert ids == {r["request_id"] for r in rows}
    engine.dispose()


def test_retrying_a_batch_does_not_duplicate(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plog = PredictionLog(engine, spill_path=tmp_path / "s.jsonl", interval_seconds=0.05)
    r = row(1)
    plog.record(dict(r))
    assert plog.flush()
    plog.record(dict(r))  # the same request id again, as after a commit whose acknowledgement was lost
    assert plog.close()
    assert count(engine) == 1
