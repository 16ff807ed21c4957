"""The prediction log: every answered prediction reaches the `predictions` table, off the request path.

`record()` only appends to an in-memory queue. A background thread writes batches in one transaction each, woken
every `interval_seconds` or as soon as `wake_rows` rows are queued: under load it writes small batches often, so
that its work (which holds the GIL while it prepares a batch) never stalls the requests for long;
`INSERT ... ON CONFLICT (request_id) DO NOTHING` makes a retried batch idempotent. While the database is
down the rows stay queued (and spill to a JSON-lines file beyond `max_memory_rows`), and are written once it
is back. `close()` flushes what is left before the process exits.

A row the database refuses for its content (too long, bad characters, a broken constraint) never blocks the
rows behind it: the batch is retried row by row and each refused row goes to the dead-letter file (JSON lines
beside the spill file: the row and the error), counted by `aicash_prediction_log_dead_letters_total`. A second
prediction under a request id already logged is dead-lettered too, with the reason "duplicate request_id"; a
retry of a row already written (same request id, same `created_at`) is recognised and skipped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import Counter
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from aicash.db.engine import json_text
from aicash.db.models import Prediction

log = logging.getLogger(__name__)

DEAD_LETTERS = Counter(
    "aicash_prediction_log_dead_letters_total",
    "Prediction-log rows the database refused for their content (or duplicate request ids), kept in the "
    "dead-letter file instead",
)
DEAD_LETTER_FILE = "prediction-log-dead-letters.jsonl"
_TABLE = Prediction.__table__
# PostgreSQL: a whole batch as one statement over one JSON document of its rows. The same text whatever the batch
# size, so it is prepared once per connection. psycopg's executemany sends a statement per row: measured, 36 µs of
# the writer's CPU per row (mostly psycopg's own Python), against a few µs this way.
_PG_INSERT = text(
    "INSERT INTO predictions (request_id, symbol, request, features, output, model_version, latency_ms, created_at) "
    "SELECT request_id, symbol, request, features, output, model_version, latency_ms, created_at "
    "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(request_id text, symbol text, request jsonb, features jsonb, "
    "output jsonb, model_version text, latency_ms float8, created_at timestamptz) "
    "ON CONFLICT (request_id) DO NOTHING"
)
_PG_COLUMNS = ("request_id", "symbol", "request", "features", "output", "model_version", "latency_ms")
# SQLite: the driver's executemany over values made here. SQLAlchemy's per-row parameter processing (a bind
# processor per JSON and time column, per row) took a third of the writer thread's samples under load.
_SQLITE_INSERT = ("INSERT INTO predictions (request_id, symbol, request, features, output, model_version, latency_ms, "
                  "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (request_id) DO NOTHING")


def refused_for_content(exc: BaseException) -> bool:
    """True when the database (or the driver) refuses the row itself: data, integrity or encoding errors.
    Connection and server errors (OperationalError, InterfaceError, ...) are not: the row is kept and retried."""
    if isinstance(exc, DataError | IntegrityError):
        return True
    if isinstance(exc, DBAPIError):
        return False
    if isinstance(exc, StatementError):  # a parameter the driver could not process
        return isinstance(exc.orig, ValueError | TypeError)
    return isinstance(exc, ValueError | TypeError)  # e.g. psycopg2's NUL-byte ValueError, UnicodeEncodeError


def _naive_utc(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


class PredictionLog:
    """Batched, retrying writer of prediction rows.

    The spill file holds the oldest rows while memory holds too many. It is only ever appended to (by
    `record()`) and read from the front, in chunks of at most `max_memory_rows` rows, in order. Its companion
    `<spill>.offset` holds the byte offset up to which rows have reached the database; it is replaced
    atomically (write a temporary file, rename it) after each committed batch, and read back at start. A
    process that dies between a commit and the offset's update writes those rows again after a restart, where
    the conflict on `request_id` with the same `created_at` skips them: nothing is written twice, nothing is
    lost. Once every row of the file is in the database, the offset file is removed first and then the spill
    file (a crash in between leaves the file with offset 0: rewritten, skipped). `pending` is O(1): a count
    of spilled rows, counted from the file once at start and kept up to date after.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        spill_path: Path,
        batch_size: int = 500,
        interval_seconds: float = 0.5,
        wake_rows: int = 50,
        max_memory_rows: int = 100_000,
        dead_letter_path: Path | None = None,
    ) -> None:
        self.engine = engine
        self.spill_path = spill_path
        self.offset_path = spill_path.with_name(spill_path.name + ".offset")
        self.dead_letter_path = dead_letter_path or spill_path.with_name(DEAD_LETTER_FILE)
        self.batch_size = batch_size
        self.interval = interval_seconds
        self.wake_rows = max(1, min(wake_rows, batch_size))
        self.max_memory_rows = max_memory_rows
        self._queue: deque[dict[str, Any]] = deque()
        self._chunk: deque[tuple[dict[str, Any] | None, int, bytes]] = deque()  # (row, end offset, line if unreadable)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # one writer at a time: the thread, flush() and close()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.written = 0
        self.failures = 0
        self.dead_letters = 0
        self.last_error: str | None = None
        self.largest_chunk = 0  # instrumentation: the most rows read from the spill file at once
        self.max_rows_in_memory = 0  # and the most rows held (queue and chunk) right after such a read
        self._spill_done, self._spilled = self._spill_state()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue) + self._spilled

    @property
    def records_in_memory(self) -> bool:
        """Whether `record` now only queues (no spill to the file): the last write went through and the queue has
        room."""
        return self.last_error is None and len(self._queue) < self.max_memory_rows

    @property
    def healthy(self) -> bool:
        """False while the last write attempt failed (the database is unreachable)."""
        return self.last_error is None

    def record(self, row: dict[str, Any]) -> None:
        """Queue one prediction: request_id, symbol, request, features, output, model_version, latency_ms."""
        row.setdefault("created_at", datetime.now(UTC))
        with self._lock:
            self._queue.append(row)
            if len(self._queue) > self.max_memory_rows:
                self._spill(self.max_memory_rows // 2)
        # while the database is down, the writer retries on its backoff, not at every request; a wake already set
        # is not set again (Event.set takes a lock and notifies: a few µs on every request while the writer works)
        if len(self._queue) >= self.wake_rows and self.last_error is None and not self._wake.is_set():
            self._wake.set()

    def flush(self, timeout: float = 10.0) -> bool:
        """Write everything queued now; True when nothing is left."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            if not self._write_batch():
                time.sleep(0.1)
        return self.pending == 0

    def close(self, timeout: float = 10.0) -> bool:
        """Stop the writer and flush; True when every row reached the database."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        return self.flush(timeout)

    def _run(self) -> None:
        backoff = self.interval
        while not self._stop.is_set():
            woken = self._wake.wait(backoff)
            self._wake.clear()
            if self._stop.is_set():
                break
            # Woken by `wake_rows` queued, write while a full batch is pending: a wake while the last batch's rows
            # were still queued finds fewer, and the few rows that arrive during a write wait for the next wake (on
            # PostgreSQL, where a batch waits a round trip, chasing them wrote batches of a row or two, each with its
            # own begin, insert and commit). At the interval, whatever is pending goes first.
            enough = self.wake_rows if woken else 1
            ok = True
            while ok and self.pending >= enough and not self._stop.is_set():
                try:
                    ok = self._write_batch()
                except Exception:  # never let the writer thread die (e.g. the dead-letter file's disk is full)
                    log.exception("prediction log: write failed")
                    ok = False
                enough = self.wake_rows
            backoff = self.interval if ok else min(backoff * 2, 5.0)

    # -- writing ---------------------------------------------------------------------------------------------
    def _take(self) -> tuple[list[dict[str, Any] | None], bool]:
        """The next batch, oldest first: from the spill file while it holds rows, else from the queue."""
        if self._spilled:
            if not self._chunk:
                self._read_chunk()
            if self._chunk:
                return [self._chunk[i][0] for i in range(min(self.batch_size, len(self._chunk)))], True
        with self._lock:
            return [self._queue[i] for i in range(min(self.batch_size, len(self._queue)))], False

    def _write_batch(self) -> bool:
        with self._write_lock:
            batch, from_spill = self._take()
            if not batch:
                return True
            if any(row is None for row in batch):  # an unreadable spill line: one by one, it is dead-lettered
                return self._write_one_by_one(batch, from_spill)
            try:
                written = self._insert(batch)  # type: ignore[arg-type]
            except Exception as exc:
                if refused_for_content(exc):
                    return self._write_one_by_one(batch, from_spill)
                self._failed(exc)
                return False
            self._consume(batch, from_spill)
            self.written += written
            self.last_error = None
            return True

    def _write_one_by_one(self, batch: list[dict[str, Any] | None], from_spill: bool) -> bool:
        """After a content error: each row alone; the refused ones go to the dead-letter file."""
        for row in batch:
            try:
                if row is None:
                    raise ValueError("unreadable spill line: " + self._chunk[0][2][:500].decode(errors="replace"))
                written = self._insert([row])
            except Exception as exc:
                if not refused_for_content(exc):
                    self._failed(exc)
                    return False
                self._dead_letter(row if row is not None else {"raw": self._chunk[0][2].decode(errors="replace")},
                                  _describe(exc))
            else:
                self.written += written
            self._consume([row], from_spill)
        self.last_error = None
        return True

    def _insert(self, rows: list[dict[str, Any]]) -> int:
        """One transaction; a request id already in the table is skipped when it is this very row again (same
        `created_at`: a retry), and dead-lettered as "duplicate request_id" otherwise. Returns the rows added."""
        with self.engine.begin() as conn:
            added = _insert_rows(conn, rows)
            if added == len(rows):
                return added
            # some request ids were there already (or the driver gives no count): compare with what is logged
            ids = {row["request_id"] for row in rows}
            logged = dict(conn.execute(select(_TABLE.c.request_id, _TABLE.c.created_at)
                                       .where(_TABLE.c.request_id.in_(ids))).all())
            duplicates = [row for row in rows
                          if _naive_utc(logged.get(row["request_id"])) != _naive_utc(row.get("created_at"))]
            for row in duplicates:
                self._dead_letter(row, "duplicate request_id")
            return added if added >= 0 else len(rows) - len(duplicates)

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = _describe(exc)
        log.warning("prediction log: %d rows kept, database write failed: %s", self.pending, self.last_error)

    def _dead_letter(self, row: dict[str, Any], error: str) -> None:
        self.dead_letter_path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"row": row, "error": error, "at": datetime.now(UTC).isoformat()}, default=str)
        with self.dead_letter_path.open("a") as fh:
            fh.write(line + "\n")
        self.dead_letters += 1
        DEAD_LETTERS.inc()
        log.error("prediction log: row %s refused (%s): kept in %s", str(row.get("request_id"))[:80], error,
                  self.dead_letter_path)

    def _consume(self, rows: list[dict[str, Any] | None], from_spill: bool) -> None:
        """The first rows of the batch are done (written, skipped or dead-lettered). A queued row that `record()`
        spilled meanwhile is in the spill file now: written again from there, it is recognised and skipped."""
        count = len(rows)
        if not from_spill:
            with self._lock:
                for row in rows:
                    if self._queue and self._queue[0] is row:
                        self._queue.popleft()
            return
        end = 0
        for _ in range(count):
            end = self._chunk.popleft()[1]
        self._save_offset(end)
        with self._lock:
            self._spilled -= count
            self._spill_done = end
            if not self._chunk and self.spill_path.exists() and self.spill_path.stat().st_size <= end:
                self._remove_spill()

    # -- spill file: the oldest rows go to disk when memory holds too many ---------------------------------
    def _spill(self, count: int) -> None:
        self.spill_path.parent.mkdir(parents=True, exist_ok=True)
        with self.spill_path.open("a") as fh:
            for _ in range(count):
                fh.write(json.dumps(self._queue.popleft(), default=str) + "\n")
        self._spilled += count

    def _spill_state(self) -> tuple[int, int]:
        """(offset already written, rows after it): read once, at start."""
        if not self.spill_path.exists():
            with contextlib.suppress(FileNotFoundError):
                self.offset_path.unlink()
            return 0, 0
        done = 0
        with contextlib.suppress(FileNotFoundError, ValueError):
            done = int(self.offset_path.read_text().strip() or 0)
        with self.spill_path.open("rb+") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() < done:  # an offset that belongs to an older file: read this one from the start
                done = 0
            if fh.tell() > done:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":  # the last line was cut short (the process died writing it)
                    fh.write(b"\n")  # so it stays a line of its own: unreadable, it will be dead-lettered
            fh.seek(done)
            rows = sum(1 for _ in fh)
        return done, rows

    def _read_chunk(self) -> None:
        """The next rows of the spill file, at most `max_memory_rows`, complete lines only."""
        limit = max(1, self.max_memory_rows)
        position = self._spill_done
        if not self.spill_path.exists():  # removed by hand: nothing left to read
            log.error("prediction log: spill file %s is gone; %d rows with it", self.spill_path, self._spilled)
            with self._lock:
                self._spill_done = self._spilled = 0
            return
        with self.spill_path.open("rb") as fh:
            fh.seek(position)
            while len(self._chunk) < limit:
                line = fh.readline()
                if not line.endswith(b"\n"):  # end of file, or a line still being appended
                    break
                position += len(line)
                row = _parse(line)
                self._chunk.append((row, position, b"" if row is not None else line))
        self.largest_chunk = max(self.largest_chunk, len(self._chunk))
        self.max_rows_in_memory = max(self.max_rows_in_memory, len(self._chunk) + len(self._queue))

    def _save_offset(self, end: int) -> None:
        tmp = self.offset_path.with_name(self.offset_path.name + ".tmp")
        tmp.write_text(str(end))
        tmp.replace(self.offset_path)

    def _remove_spill(self) -> None:
        """Every spilled row is in the database: offset first, then the file (see the class docstring)."""
        with contextlib.suppress(FileNotFoundError):
            self.offset_path.unlink()
        self.spill_path.unlink()
        self._spill_done = 0
        self._spilled = 0


def _insert_rows(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """`INSERT ... ON CONFLICT (request_id) DO NOTHING` of `rows`; the rows added (-1 when the driver cannot say)."""
    if conn.dialect.name != "postgresql":  # SQLite
        return int(conn.exec_driver_sql(_SQLITE_INSERT, [_sqlite_values(row) for row in rows]).rowcount)
    document = []
    for row in rows:
        record = {name: row.get(name) for name in _PG_COLUMNS}
        created = row.get("created_at")
        record["created_at"] = created.isoformat() if isinstance(created, datetime) else created
        document.append(record)
    return int(conn.execute(_PG_INSERT, {"rows": json_text(document)}).rowcount)


def _sqlite_values(row: dict[str, Any]) -> tuple[Any, ...]:
    """A row's values for `_SQLITE_INSERT`, as SQLAlchemy would bind them: the JSON documents by `json_text`, the
    time as SQLAlchemy's SQLite DATETIME text (the wall-clock time, microseconds always written). A value that
    cannot be bound raises TypeError or ValueError: refused for its content, as SQLAlchemy's refusal was."""
    created = row.get("created_at") or datetime.now(UTC)
    if not isinstance(created, datetime):
        raise TypeError(f"created_at: a datetime, not {type(created).__name__}")
    return (row.get("request_id"), row.get("symbol"), json_text(row.get("request", {})),
            json_text(row.get("features", {})), json_text(row.get("output", {})), row.get("model_version"),
            row.get("latency_ms"), created.replace(tzinfo=None).isoformat(" ", "microseconds"))


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        row = json.loads(line)
        row["created_at"] = datetime.fromisoformat(row["created_at"])
    except (ValueError, KeyError, TypeError):
        return None
    return row if isinstance(row, dict) else None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
