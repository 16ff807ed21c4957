"""The prediction log: every answered prediction reaches the `predictions` table, off the request path.

`record()` only appends to an in-memory queue. A background thread writes batches in one transaction each;
`INSERT ... ON CONFLICT (request_id) DO NOTHING` makes a retried batch idempotent. While the database is
down the rows stay queued (and spill to a JSON-lines file beyond `max_memory_rows`), and are written once it
is back. `close()` flushes what is left before the process exits.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from aicash.db.models import Prediction

log = logging.getLogger(__name__)


class PredictionLog:
    """Batched, retrying writer of prediction rows."""

    def __init__(
        self,
        engine: Engine,
        *,
        spill_path: Path,
        batch_size: int = 500,
        interval_seconds: float = 0.5,
        max_memory_rows: int = 100_000,
    ) -> None:
        self.engine = engine
        self.spill_path = spill_path
        self.batch_size = batch_size
        self.interval = interval_seconds
        self.max_memory_rows = max_memory_rows
        self._queue: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.written = 0
        self.failures = 0
        self.last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue) + self._spilled_rows()

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
        if len(self._queue) >= self.batch_size:
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
            self._wake.wait(backoff)
            self._wake.clear()
            if self._stop.is_set():
                break
            ok = True
            while ok and self.pending:
                ok = self._write_batch()
            backoff = self.interval if ok else min(backoff * 2, 5.0)

    def _take(self) -> list[dict[str, Any]]:
        with self._lock:
            if not self._queue:
                self._unspill()
            return [self._queue[i] for i in range(min(self.batch_size, len(self._queue)))]

    def _write_batch(self) -> bool:
        batch = self._take()
        if not batch:
            return True
        try:
            with self.engine.begin() as conn:
                insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
                conn.execute(insert(Prediction.__table__).on_conflict_do_nothing(index_elements=["request_id"]), batch)
        except SQLAlchemyError as exc:
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            log.warning("prediction log: %d rows kept, database write failed: %s", self.pending, self.last_error)
            return False
        with self._lock:
            for _ in batch:
                self._queue.popleft()
        self.written += len(batch)
        self.last_error = None
        return True

    # -- spill file: the oldest rows go to disk when memory holds too many ---------------------------------
    def _spill(self, count: int) -> None:
        self.spill_path.parent.mkdir(parents=True, exist_ok=True)
        with self.spill_path.open("a") as fh:
            for _ in range(count):
                fh.write(json.dumps(self._queue.popleft(), default=str) + "\n")

    def _spilled_rows(self) -> int:
        if not self.spill_path.exists():
            return 0
        with self.spill_path.open() as fh:
            return sum(1 for _ in fh)

    def _unspill(self) -> None:
        if not self.spill_path.exists():
            return
        with self.spill_path.open() as fh:
            for line in fh:
                row = json.loads(line)
                row["created_at"] = datetime.fromisoformat(row["created_at"])
                self._queue.append(row)
        self.spill_path.unlink()
