"""The prediction log writes off the request path, in batches, and loses nothing through an outage."""

from __future__ import annotations

import json
import resource
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import REGISTRY
from sqlalchemy import func, select

from aicash.db import migrate
from aicash.db.engine import make_engine
from aicash.db.models import Prediction
from aicash.serving.prediction_log import DEAD_LETTER_FILE, PredictionLog
from tests.support.polling import seconds_until


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
    seconds_until(lambda: count(engine) >= 120, limit=10)
    assert count(engine) == 120
    assert plog.close() and plog.written == 120


def test_a_batch_is_one_statement_and_every_value_arrives_as_given(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A batch goes in one INSERT (on PostgreSQL one statement over a JSON document of the rows, whatever the batch
    size); times keep their microseconds and zone, numbers and nested documents their values."""
    from sqlalchemy import event

    statements: list[tuple[str, bool]] = []

    def seen(_conn, _cursor, statement, _parameters, _context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("INSERT"):
            statements.append((statement, executemany))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        plog = PredictionLog(engine, spill_path=tmp_path / "spill.jsonl", interval_seconds=60)
        created = datetime(2026, 3, 29, 1, 59, 59, 123456, tzinfo=UTC)  # the night a European clock moves
        rows = [row(i) | {"created_at": created + timedelta(microseconds=i), "latency_ms": 0.1 * i,
                          "features": {"rsi_value": 50.0 + i, "note": "é ✓ \"quoted\" \\"},
                          "output": {"probabilities": {"BUY": 0.25, "SELL": 0.5, "HOLD": 0.25}, "cached": i % 2 == 0}}
                for i in range(120)]
        for r in rows:
            plog.record(r)
        assert plog.flush()
        plog.close()
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    if engine.dialect.name == "postgresql":
        assert [many for _, many in statements] == [False]  # one statement, not one per row
    else:
        assert len(statements) == 1
    with engine.connect() as conn:
        logged = {r.request_id: r for r in conn.execute(select(Prediction.__table__))}
    for r in rows:
        got = logged[r["request_id"]]
        at = got.created_at if got.created_at.tzinfo else got.created_at.replace(tzinfo=UTC)  # SQLite keeps no zone
        assert at == r["created_at"] and got.latency_ms == r["latency_ms"]
        assert (got.request, got.features, got.output) == (r["request"], r["features"], r["output"])


def test_a_logged_row_is_stored_as_sqlalchemy_stores_it(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The writer binds its own values on SQLite (the driver's executemany): the stored text of every column (the
    time's format, which SQL comparisons on created_at read, and the JSON documents) is what an ORM insert of the
    same values stores."""
    from sqlalchemy import insert, text

    created = datetime(2026, 12, 8, 1, 2, 3, tzinfo=UTC)  # no microseconds: SQLAlchemy still writes them
    values = row(1) | {"created_at": created, "latency_ms": 0.125,
                       "output": {"probabilities": {"BUY": 0.2, "SELL": 0.5}, "features_as_of": None, "n": 10**12}}
    plog = PredictionLog(engine, spill_path=tmp_path / "spill.jsonl", interval_seconds=60)
    plog.record(dict(values, request_id="by-the-log"))
    assert plog.flush() and plog.close()
    with engine.begin() as conn:
        conn.execute(insert(Prediction.__table__).values(dict(values, request_id="by-the-orm")))
        stored = {r[0]: r[1:] for r in conn.execute(text(
            "SELECT request_id, CAST(created_at AS TEXT), CAST(request AS TEXT), CAST(features AS TEXT), "
            "CAST(output AS TEXT), symbol, model_version, latency_ms FROM predictions "
            "WHERE request_id IN ('by-the-log', 'by-the-orm')"))}
    assert stored["by-the-log"] == stored["by-the-orm"]
    later = created + timedelta(seconds=1)
    with engine.connect() as conn:  # SQLAlchemy's bound time compares with the stored one
        assert conn.execute(select(func.count()).select_from(Prediction)
                            .where(Prediction.created_at < later, Prediction.created_at >= created)).scalar_one() == 2


def test_the_writer_wakes_once_wake_rows_are_queued(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Under load the writer writes small batches often (its interval here is a minute)."""
    plog = PredictionLog(engine, spill_path=tmp_path / "spill.jsonl", batch_size=500, interval_seconds=60,
                         wake_rows=10)
    for i in range(9):
        plog.record(row(i))
    time.sleep(0.5)
    assert count(engine) == 0  # below wake_rows: waits for its interval
    plog.record(row(9))
    seconds_until(lambda: count(engine) >= 10, limit=5)
    assert count(engine) == 10
    assert plog.close() and plog.written == 10


def test_rows_queued_during_a_write_wait_for_a_full_batch(engine, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A few rows that arrive while a batch is being written are not chased in batches of their own (each paying a
    begin, an insert and a commit): they wait for `wake_rows` more, or the interval."""
    plog = PredictionLog(engine, spill_path=tmp_path / "spill.jsonl", batch_size=500, interval_seconds=60,
                         wake_rows=10)
    batches: list[int] = []
    insert = plog._insert

    def slow_insert(rows):  # type: ignore[no-untyped-def]
        batches.append(len(rows))
        if len(batches) == 1:  # requests keep coming while the first batch is on its way
            for i in range(100, 103):
                plog.record(row(i))
            time.sleep(0.2)
        return insert(rows)

    monkeypatch.setattr(plog, "_insert", slow_insert)
    for i in range(10):
        plog.record(row(i))
    seconds_until(lambda: count(engine) >= 10, limit=5)
    time.sleep(0.5)
    assert batches == [10] and count(engine) == 10 and plog.pending == 3
    for i in range(10, 17):
        plog.record(row(i))
    seconds_until(lambda: count(engine) >= 20, limit=5)
    assert batches == [10, 10] and count(engine) == 20
    assert plog.close() and plog.written == 20


def test_while_the_database_is_down_rows_do_not_wake_the_writer(stoppable_postgres, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Retries follow the writer's backoff (0.2 s doubling here), not every request past wake_rows."""
    engine = make_engine(stoppable_postgres.url)
    migrate.upgrade(engine)
    plog = PredictionLog(engine, spill_path=tmp_path / "spill.jsonl", interval_seconds=0.2, wake_rows=5)
    rows = [row(i) for i in range(205)]
    for r in rows[:5]:
        plog.record(r)
    assert plog.flush(5) and count(engine) == 5
    stoppable_postgres.stop()
    for r in rows[5:]:
        plog.record(r)
        time.sleep(0.006)  # 200 requests over about 1.2 s
    assert not plog.healthy
    assert 1 <= plog.failures <= 6  # 0.2 + 0.4 + 0.8 s: a handful of attempts, not one per request
    stoppable_postgres.start()
    assert plog.close(timeout=20)
    assert count(engine) == 205
    engine.dispose()


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
    r = row(1) | {"created_at": datetime.now(UTC)}
    plog.record(dict(r))
    assert plog.flush()
    plog.record(dict(r))  # the same row again, as after a commit whose acknowledgement was lost
    assert plog.close()
    assert count(engine) == 1
    assert plog.dead_letters == 0 and not (tmp_path / DEAD_LETTER_FILE).exists()  # a retry is no duplicate


def dead_letters_total() -> float:
    return REGISTRY.get_sample_value("aicash_prediction_log_dead_letters_total") or 0.0


def dead_lettered(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_row_refused_for_its_content_is_dead_lettered_and_the_rest_flow_on(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """One bad row in the middle of a batch: every other row is written exactly once, the bad one is in the
    dead-letter file and counted, and the rows recorded after it are logged too (the log is not stuck).
    PostgreSQL refuses a request_id longer than VARCHAR(64) (SQLite stores it); both refuse a lone surrogate."""
    postgres = engine.dialect.name == "postgresql"
    plog = PredictionLog(engine, spill_path=tmp_path / "spill.jsonl", batch_size=50, interval_seconds=60)
    before = dead_letters_total()
    rows = [row(i) for i in range(40)]
    rows[15]["request_id"] = "x" * 100  # what an unchecked X-Request-Id header used to put in the log
    rows[25]["symbol"] = "EUR\ud800"  # not encodable in UTF-8
    for r in rows:
        plog.record(r)
    assert plog.flush(20)
    later = [row(100 + i) for i in range(20)]  # 20 more predictions after the refused ones
    for r in later:
        plog.record(r)
    assert plog.close(20)

    refused = {rows[25]["request_id"]} | ({rows[15]["request_id"]} if postgres else set())
    with engine.connect() as conn:
        logged = dict(conn.execute(select(Prediction.request_id, func.count()).group_by(Prediction.request_id)).all())
    expected = {r["request_id"] for r in rows + later} - refused
    assert logged == dict.fromkeys(expected, 1)
    letters = dead_lettered(tmp_path / DEAD_LETTER_FILE)
    assert {d["row"]["request_id"] for d in letters} == refused and len(letters) == len(refused)
    assert all(d["error"] for d in letters)
    if postgres:
        [long_id] = [d for d in letters if d["row"]["request_id"] == "x" * 100]
        assert "DataError" in long_id["error"] and "too long" in long_id["error"], long_id
    assert plog.dead_letters == len(refused) and dead_letters_total() - before == len(refused)
    assert plog.healthy and plog.pending == 0


def test_a_reused_request_id_is_dead_lettered_not_lost(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plog = PredictionLog(engine, spill_path=tmp_path / "spill.jsonl", interval_seconds=60)
    first = row(1)
    plog.record(first)
    assert plog.flush()
    second = dict(first) | {"created_at": datetime.now(UTC) + timedelta(seconds=1), "output": {"signal": "BUY"}}
    third = row(3)
    plog.record(second)  # another prediction under the same request id
    plog.record(third)
    assert plog.close()
    with engine.connect() as conn:
        logged = dict(conn.execute(select(Prediction.request_id, Prediction.output)).all())
    assert logged == {first["request_id"]: first["output"], third["request_id"]: third["output"]}
    [letter] = dead_lettered(tmp_path / DEAD_LETTER_FILE)
    assert letter["error"] == "duplicate request_id" and letter["row"]["output"] == {"signal": "BUY"}
    assert plog.dead_letters == 1


def write_spill(path: Path, n: int, start: int = 0) -> list[str]:
    """`n` spilled rows written directly as the log writes them (JSON lines); their request ids."""
    created = datetime.now(UTC).isoformat()
    ids = [f"s{start + i}" for i in range(n)]
    with path.open("a") as fh:
        fh.writelines(
            f'{{"request_id": "{rid}", "symbol": "EURUSD", "request": {{}}, "features": {{}}, "output": {{}}, '
            f'"model_version": "v1", "latency_ms": 1.0, "created_at": "{created}"}}\n' for rid in ids
        )
    return ids


_OPENED: list[str] = []
_WATCH: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _WATCH and str(args[0]) in _WATCH:
        _OPENED.append(str(args[0]))


sys.addaudithook(_audit)


def test_pending_is_counted_once_not_read_from_the_file(tmp_path: Path) -> None:
    """A log that starts over a spill file counts its rows once; `pending` then never opens the file."""
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    migrate.upgrade(engine)
    spill = tmp_path / "spill.jsonl"
    write_spill(spill, 200_000)
    plog = PredictionLog(engine, spill_path=spill, interval_seconds=60)
    _WATCH.append(str(spill))
    try:
        started = time.perf_counter()
        values = [plog.pending for _ in range(1000)]
        seconds = time.perf_counter() - started
    finally:
        _WATCH.clear()
    assert values == [200_000] * 1000
    assert _OPENED == [], "pending opened the spill file"
    assert seconds < 0.1, seconds
    plog._stop.set()
    plog._wake.set()
    engine.dispose()


def test_a_million_spilled_rows_drain_in_bounded_chunks(tmp_path: Path) -> None:
    """After a long outage: 1,000,000 rows in the spill file reach the database in order, in chunks of at most
    `max_memory_rows`, each exactly once, and the spill file is gone afterwards."""
    engine = make_engine(f"sqlite:///{tmp_path / 'v.db'}")
    migrate.upgrade(engine)
    spill = tmp_path / "spill.jsonl"
    ids = write_spill(spill, 1_000_000)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    plog = PredictionLog(engine, spill_path=spill, batch_size=5000, interval_seconds=60, max_memory_rows=50_000)
    assert plog.pending == 1_000_000
    assert plog.close(timeout=120)
    seconds = time.perf_counter() - started
    rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    print(f"drain: {1_000_000 / seconds:,.0f} rows/s ({seconds:.1f} s), largest chunk {plog.largest_chunk}, "
          f"most rows in memory {plog.max_rows_in_memory}, peak RSS growth {rss_growth_mb:.0f} MB")
    assert 0 < plog.largest_chunk <= 50_000 and plog.max_rows_in_memory <= 50_000
    assert count(engine) == 1_000_000 and plog.written == 1_000_000
    with engine.connect() as conn:
        first, last = conn.execute(select(Prediction.request_id).order_by(Prediction.id).limit(1)).scalar_one(), \
            conn.execute(select(Prediction.request_id).order_by(Prediction.id.desc()).limit(1)).scalar_one()
        distinct = conn.execute(select(func.count(func.distinct(Prediction.request_id)))).scalar_one()
    assert (first, last) == (ids[0], ids[-1]) and distinct == 1_000_000  # in order, each once
    assert not spill.exists() and not plog.offset_path.exists() and plog.pending == 0
    assert rss_growth_mb < 500, rss_growth_mb
    engine.dispose()


def test_a_restart_midway_through_the_spill_file_writes_nothing_twice(tmp_path: Path) -> None:
    """The process died after committing rows of the spill file but before recording how far it got: the next
    one writes them again, recognises them as already logged, and neither duplicates nor dead-letters them."""
    engine = make_engine(f"sqlite:///{tmp_path / 'r.db'}")
    migrate.upgrade(engine)
    spill = tmp_path / "spill.jsonl"
    ids = write_spill(spill, 1000)
    first = PredictionLog(engine, spill_path=spill, batch_size=100, interval_seconds=60, max_memory_rows=300)
    first._stop.set()  # this writer is driven by hand
    first._wake.set()
    assert first._write_batch() and first._write_batch()  # 200 rows written, the offset saved
    assert first.offset_path.read_text() == str(len("".join(spill.read_text().splitlines(True)[:200])))
    with engine.begin() as conn:  # 100 more committed whose offset never made it to disk
        rows = [json.loads(line) for line in spill.read_text().splitlines()[200:300]]
        for r in rows:
            r["created_at"] = datetime.fromisoformat(r["created_at"])
        conn.execute(Prediction.__table__.insert(), rows)
    second = PredictionLog(engine, spill_path=spill, batch_size=100, interval_seconds=60, max_memory_rows=300)
    assert second.pending == 800
    assert second.close(20)
    with engine.connect() as conn:
        logged = dict(conn.execute(select(Prediction.request_id, func.count()).group_by(Prediction.request_id)).all())
    assert logged == dict.fromkeys(ids, 1) and second.dead_letters == 0
    assert not spill.exists()
    engine.dispose()


def test_an_unreadable_spill_line_is_dead_lettered(tmp_path: Path) -> None:
    """A line cut short when a process died mid-write does not stop the drain: it goes to the dead-letter file."""
    engine = make_engine(f"sqlite:///{tmp_path / 'u.db'}")
    migrate.upgrade(engine)
    spill = tmp_path / "spill.jsonl"
    ids = write_spill(spill, 10)
    with spill.open("a") as fh:
        fh.write('{"request_id": "cut-sho')  # the process died here
    plog = PredictionLog(engine, spill_path=spill, batch_size=4, interval_seconds=60)
    assert plog.pending == 11
    assert plog.close(20)
    with engine.connect() as conn:
        assert set(conn.execute(select(Prediction.request_id)).scalars()) == set(ids)
    [letter] = dead_lettered(tmp_path / DEAD_LETTER_FILE)
    assert letter["row"] == {"raw": '{"request_id": "cut-sho\n'} and "unreadable" in letter["error"]
    assert not spill.exists()
    engine.dispose()
