"""Keys verified from memory: the active keys read at start and every `refresh_seconds`, so a known key costs no
query; new keys pass at once, revocations and admin changes hold within a second, and a database outage falls
back as before (keys read last, then the grace cache, then the snapshot, else 503)."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy import text as sql

from aicash.db import migrate
from aicash.db.engine import make_engine
from aicash.serving.keys import KeysUnavailableError, KeyVerifier, Principal, create_key, hash_key, revoke_key
from tests.support.polling import seconds_until

KEYS_LOG = "aicash.serving.keys"


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements run on `engine` while the block runs, from any thread."""
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


@contextmanager
def verifier_on(url: str, **options: Any) -> Iterator[KeyVerifier]:
    """A verifier with an engine of its own (a replica), closed and disposed afterwards."""
    verifier = KeyVerifier(make_engine(url), **options)
    try:
        yield verifier
    finally:
        verifier.close()
        verifier.engine.dispose()


def test_a_known_key_is_verified_without_a_query(db_url: str, engine) -> None:  # type: ignore[no-untyped-def]
    key = create_key(engine, "frontend")
    with verifier_on(db_url, refresh_seconds=3600) as verifier, statements(verifier.engine) as seen:
        for _ in range(200):
            assert verifier.verify(key) == Principal("frontend", False)
        assert seen == []
        late = create_key(engine, "late")  # after the read at start: looked up once, then held in memory
        assert verifier.verify(late) == Principal("late", False)
        looked_up = len(seen)
        assert looked_up >= 1
        for _ in range(200):
            assert verifier.verify(late) == Principal("late", False)
        assert len(seen) == looked_up


def test_the_refresh_runs_one_query_per_period(db_url: str, engine) -> None:  # type: ignore[no-untyped-def]
    create_key(engine, "frontend")
    with verifier_on(db_url, refresh_seconds=0.1) as verifier, statements(verifier.engine) as seen:
        time.sleep(1.05)
        reads = [s for s in seen if "api_keys" in s]
        assert 5 <= len(reads) <= 12, reads  # about ten, one statement each
        assert all("revoked_at IS NULL" in s for s in reads)


def test_new_unknown_changed_and_revoked_keys(db_url: str, engine) -> None:  # type: ignore[no-untyped-def]
    """A key made after the verifier started passes at once, an unknown one is refused; a change of the admin flag
    and a revocation, made by plain SQL so that nothing tells the verifier, hold within a second."""
    with verifier_on(db_url) as verifier:
        time.sleep(0.1)
        key = create_key(engine, "frontend")
        assert verifier.verify(key) == Principal("frontend", False)
        assert verifier.verify("aic_" + "x" * 43) is None
        assert verifier.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        assert verifier.verify("not-a-key") is None and verifier.verify("aic_" + "x" * 200) is None

        with engine.begin() as conn:
            conn.execute(sql("UPDATE api_keys SET is_admin = :yes WHERE name = 'frontend'"), {"yes": True})
        assert seconds_until(lambda: verifier.verify(key) == Principal("frontend", True)) < 1.0
        with engine.begin() as conn:
            conn.execute(sql("UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP WHERE name = 'frontend'"))
        assert seconds_until(lambda: verifier.verify(key) is None) < 1.0
        assert verifier.verify(key) is None  # and stays refused

        other = create_key(engine, "frontend-2")  # another key made now passes at once; the revoked one does not
        assert verifier.verify(other) == Principal("frontend-2", False) and verifier.verify(key) is None


def test_a_revocation_right_after_a_lookup_still_holds_within_a_second(db_url: str, engine) -> None:  # type: ignore[no-untyped-def]
    """A key found by the database path is kept in memory; the next read of the keys drops it once revoked."""
    with verifier_on(db_url) as verifier:
        key = create_key(engine, "frontend")
        assert verifier.verify(key) is not None  # looked up, now in memory
        revoke_key(engine, "frontend")
        assert seconds_until(lambda: verifier.verify(key) is None) < 1.0


def test_verifying_from_many_threads_while_keys_change(db_url: str, engine) -> None:  # type: ignore[no-untyped-def]
    keys = {create_key(engine, f"k{i}"): f"k{i}" for i in range(5)}
    wrong: list[str] = []
    stop = threading.Event()

    def hammer(verifier: KeyVerifier) -> None:
        while not stop.is_set():
            for key, name in keys.items():
                principal = verifier.verify(key)
                if principal is None or principal.name != name:
                    wrong.append(name)

    with verifier_on(db_url, refresh_seconds=0.05) as verifier:
        threads = [threading.Thread(target=hammer, args=(verifier,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for i in range(5):  # other keys come and go meanwhile
            create_key(engine, f"other{i}")
            revoke_key(engine, f"other{i}")
        time.sleep(0.3)
        stop.set()
        for thread in threads:
            thread.join()
    assert wrong == []


def test_close_stops_the_thread(db_url: str, engine) -> None:  # type: ignore[no-untyped-def]
    verifier = KeyVerifier(engine, refresh_seconds=0.05)
    thread = verifier._thread
    assert thread.is_alive() and thread.daemon
    verifier.close()
    assert not thread.is_alive()
    verifier.close()  # again: nothing to do

    forgotten = KeyVerifier(engine, refresh_seconds=0.05)
    thread = forgotten._thread
    del forgotten  # never closed: the thread holds it weakly and ends at its next refresh
    gc.collect()
    thread.join(timeout=2)
    assert not thread.is_alive()


class _Broken:
    """An engine whose every connection fails with an error that is no database error."""

    def connect(self) -> Any:
        raise RuntimeError("not a database error")


def test_the_thread_survives_errors_and_logs_once(db_url: str, engine, caplog) -> None:  # type: ignore[no-untyped-def]
    key = create_key(engine, "frontend")
    caplog.set_level(logging.INFO, logger=KEYS_LOG)
    with verifier_on(db_url, refresh_seconds=0.02) as verifier:
        real = verifier.engine
        verifier.engine = _Broken()  # type: ignore[assignment]
        time.sleep(0.3)  # about 15 failed reads
        assert verifier._thread.is_alive()
        assert verifier.verify(key) == Principal("frontend", False)  # read less than grace_seconds ago
        verifier.engine = real
        late = create_key(engine, "late")
        assert seconds_until(lambda: verifier.verify(late) is not None) < 1.0
        revoke_key(engine, "frontend")
        assert seconds_until(lambda: verifier.verify(key) is None) < 1.0  # reads again
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == KEYS_LOG]
    assert [level for level, _ in records] == ["WARNING", "INFO"], records
    assert "RuntimeError: not a database error" in records[0][1]


@pytest.mark.timeout(120)
def test_database_down_after_start(stoppable_postgres, caplog) -> None:  # type: ignore[no-untyped-def]
    """With PostgreSQL stopped, the keys read last pass for `grace_seconds` after that read, without a query; then
    (and for any other key) it is today's outage path: the grace cache, the fallback, else KeysUnavailableError.
    When the database is back, the keys are read again."""
    caplog.set_level(logging.INFO, logger=KEYS_LOG)
    engine = make_engine(stoppable_postgres.url)
    migrate.upgrade(engine)
    key, checked = create_key(engine, "frontend"), create_key(engine, "checked")
    snapshot = {"frontend": Principal("from-snapshot", False)}
    fallback_asked: list[str] = []

    def fallback(digest: str) -> Principal | None:
        fallback_asked.append(digest)
        return snapshot["frontend"] if digest == hash_key(key) else None

    plain = KeyVerifier(engine, grace_seconds=2.0, refresh_seconds=0.1)
    with_fallback = KeyVerifier(make_engine(stoppable_postgres.url), grace_seconds=2.0, refresh_seconds=0.1,
                                fallback=fallback)
    try:
        stoppable_postgres.stop()
        stopped = time.monotonic()
        for verifier in (plain, with_fallback):
            assert verifier.verify(key) == Principal("frontend", False)  # from memory
            assert verifier.verify(checked) == Principal("checked", False)
        with pytest.raises(KeysUnavailableError, match="database is unreachable"):
            plain.verify("aic_" + "x" * 43)  # not in memory, no grace, no fallback: neither accepted nor refused
        assert with_fallback.verify("aic_" + "x" * 43) is None  # the fallback refuses it
        assert fallback_asked == [hash_key("aic_" + "x" * 43)]

        # grace_seconds after the last read, the keys in memory no longer pass on their own
        seconds_until(lambda: _unavailable(plain, key), limit=4.0)
        assert 1.0 < time.monotonic() - stopped < 3.5
        seconds_until(lambda: with_fallback.verify(key) == Principal("from-snapshot", False))  # then the fallback
        assert with_fallback.verify(checked) is None  # which does not hold it
        assert plain._thread.is_alive() and with_fallback._thread.is_alive()

        stoppable_postgres.start()
        seconds_until(lambda: all(_answers(v, key) == Principal("frontend", False) for v in (plain, with_fallback)),
                      limit=10.0)
        revoke_key(engine, "checked")
        assert seconds_until(lambda: all(v.verify(checked) is None for v in (plain, with_fallback))) < 1.0
    finally:
        plain.close()
        with_fallback.close()
        with_fallback.engine.dispose()
        engine.dispose()
    assert not plain._thread.is_alive() and not with_fallback._thread.is_alive()
    records = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == KEYS_LOG]
    assert sorted(level for level, _ in records) == ["INFO", "INFO", "WARNING", "WARNING"], records  # per verifier


def _answers(verifier: KeyVerifier, key: str) -> Principal | None | str:
    """What the verifier says of `key`: its principal, None, or "unavailable"."""
    try:
        return verifier.verify(key)
    except KeysUnavailableError:
        return "unavailable"


def _unavailable(verifier: KeyVerifier, key: str) -> bool:
    return _answers(verifier, key) == "unavailable"
