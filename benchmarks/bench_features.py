"""Feature-store figures, local (Parquet + SQLite) and PostgreSQL (embedded unless DATABASE_URL is set):

- whole `features.store.materialize` of 1,000,000 hourly bars over 10 symbols: candles -> indicators -> offline
  tables -> Feast materialize of both views, windows included; target under 10 s (100,000 bars/s); then the
  same again as the user runs it, the `aicash features materialize` command in a process of its own (Python's
  start and the imports of Feast and pandas included);
- `features.online.online_features` of one symbol (16 indicators + the 64 x 16 window via the feature service),
  p50 and p99 over 2,000 calls after a warm-up; target p99 under 1 ms.

Run: `python -m benchmarks features`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import make_url

from aicash.db import migrate
from aicash.db.engine import engine_for
from aicash.market.ingest import ingest_frame
from aicash.market.synth import synth_universe
from aicash.settings import Settings, load_settings
from benchmarks.common import Row, postgres_server, row, scratch_database
from features import online, store

BARS = 1_000_000
SYMBOLS = 10
LOOKUPS = 2_000
MATERIALIZE_TARGET_S = 10.0
P99_TARGET_MS = 1.0


@contextmanager
def _local_settings() -> Iterator[Settings]:
    with tempfile.TemporaryDirectory(prefix="aicash-bench-features-") as folder:
        home = Path(folder)
        yield load_settings(aicash_home=home, database_url=f"sqlite:///{home / 'aicash.db'}")


@contextmanager
def _postgres_settings() -> Iterator[Settings]:
    with (
        tempfile.TemporaryDirectory(prefix="aicash-bench-features-") as folder,
        postgres_server() as server,
        scratch_database(server) as engine,
    ):
        url = make_url(engine.url).render_as_string(hide_password=False)
        yield load_settings(aicash_home=Path(folder), database_url=url)


def _load_candles(settings: Settings, universe: list[tuple[str, pd.DataFrame]]) -> None:
    engine = engine_for(settings)
    try:
        migrate.upgrade(engine)
        for symbol, candles in universe:
            ingest_frame(engine, candles, symbol, "1h")
    finally:
        engine.dispose()


def _materialize_command(settings: Settings) -> float:
    """Wall time of `aicash features materialize` in its own process, on the same home and database."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in {n.upper() for n in Settings.model_fields}}
    env |= {"AICASH_HOME": str(settings.aicash_home), "DATABASE_URL": settings.sqlalchemy_url, "FEAST_USAGE": "False"}
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "aicash"), "features", "materialize"], env=env,  # noqa: S603
                   check=True, capture_output=True, timeout=600)
    return time.perf_counter() - start


def _measure(label: str, settings: Settings, universe: list[tuple[str, pd.DataFrame]]) -> list[Row]:
    _load_candles(settings, universe)
    store.apply(settings)
    marks: dict[str, float] = {}

    def progress(step: str, done: int, total: int) -> None:
        marks.setdefault(step, time.perf_counter())

    start = time.perf_counter()
    store.materialize(settings, progress=progress)
    seconds = time.perf_counter() - start
    feast_seconds = time.perf_counter() - marks["materialize technical_indicators"] if marks else float("nan")
    rate = BARS / seconds

    command_seconds = _materialize_command(settings)

    feature_store = store.get_store(settings)
    symbol = universe[len(universe) // 2][0]
    for _ in range(200):
        online.online_features(feature_store, symbol)
    latencies = np.empty(LOOKUPS)
    for i in range(LOOKUPS):
        t0 = time.perf_counter()
        online.online_features(feature_store, symbol)
        latencies[i] = (time.perf_counter() - t0) * 1000
    p50, p99 = (float(v) for v in np.percentile(latencies, [50, 99]))
    return [
        row(f"materialize 1M bars / 10 symbols, {label}", rate, "bars/s", "> 100,000 bars/s (< 10 s)",
            seconds < MATERIALIZE_TARGET_S),
        row(f"  whole materialize, {label}", seconds, "s", "< 10 s", seconds < MATERIALIZE_TARGET_S),
        row(f"  of which Feast materialize (2 views), {label}", feast_seconds, "s"),
        row(f"`aicash features materialize` command, {label}", command_seconds, "s", "< 10 s",
            command_seconds < MATERIALIZE_TARGET_S),
        row(f"online features p50 (16 + 64x16 window), {label}", p50, "ms"),
        row(f"online features p99 (16 + 64x16 window), {label}", p99, "ms", "< 1 ms", p99 < P99_TARGET_MS),
    ]


def run() -> list[Row]:
    universe = list(synth_universe(SYMBOLS, BARS // SYMBOLS, seed=1, timeframe_step=pd.Timedelta("1h")))
    rows: list[Row] = []
    with _local_settings() as settings:
        rows += _measure("local (Parquet + SQLite)", settings, universe)
    with _postgres_settings() as settings:
        rows += _measure("PostgreSQL", settings, universe)
    return rows


if __name__ == "__main__":
    for r in run():
        print(r)
