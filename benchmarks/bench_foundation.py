"""Foundation figures: ingesting 1,000,000 synthetic bars (SQLite, PostgreSQL), the same bars from a CSV file through
the `aicash data ingest` command (its own process: reading, validation with line and column, the upsert), and
indicator throughput (TA-Lib over one long series, and the platform's per-symbol `with_indicators`)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import make_url

from aicash.indicators import compute_indicators, with_indicators
from aicash.market.ingest import ingest_frame
from aicash.market.synth import synth_universe
from aicash.settings import Settings
from benchmarks.common import Row, postgres_server, row, scratch_database, scratch_sqlite, timed

BARS = 1_000_000
SYMBOLS = 10


def _universe() -> list[tuple[str, pd.DataFrame]]:
    return list(synth_universe(SYMBOLS, BARS // SYMBOLS, seed=1, timeframe_step=pd.Timedelta("1h")))


def _ingest_all(engine, universe) -> None:  # type: ignore[no-untyped-def]
    for symbol, candles in universe:
        ingest_frame(engine, candles, symbol, "1h")


def _ingest_command(csv: Path, database_url: str, home: Path) -> float:
    """Wall time of `aicash data ingest CSV --symbol BENCH` in a process of its own."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in Settings.model_fields}
    env |= {"AICASH_HOME": str(home), "DATABASE_URL": database_url}
    start = time.perf_counter()
    subprocess.run([str(Path(sys.executable).parent / "aicash"), "data", "ingest", str(csv), "--symbol", "BENCH",  # noqa: S603
                    "--timeframe", "1h"], env=env, check=True, capture_output=True, timeout=600)
    return time.perf_counter() - start


def run() -> list[Row]:
    universe = _universe()
    rows: list[Row] = []
    with scratch_sqlite() as engine:
        seconds = timed(lambda: _ingest_all(engine, universe))
    rows.append(row("ingest 1M bars, SQLite", seconds, "s", "< 30 s", seconds < 30))
    with postgres_server() as url, scratch_database(url) as engine:
        seconds = timed(lambda: _ingest_all(engine, universe))
    rows.append(row("ingest 1M bars, PostgreSQL (COPY + upsert)", seconds, "s", "< 30 s", seconds < 30))

    one = pd.concat([c for _, c in universe], ignore_index=True)
    with tempfile.TemporaryDirectory(prefix="aicash-bench-ingest-") as folder:
        csv = Path(folder) / "bench-1m.csv"
        series = one.assign(timestamp=pd.date_range("1990-01-01", periods=len(one), freq="h", tz="UTC"))
        series[["timestamp", "open", "high", "low", "close", "volume"]].to_csv(csv, index=False)
        seconds = _ingest_command(csv, f"sqlite:///{Path(folder) / 'aicash.db'}", Path(folder))
        rows.append(row("`aicash data ingest` 1M-row CSV, SQLite", seconds, "s", "< 30 s", seconds < 30))
        with postgres_server() as url, scratch_database(url) as engine:
            target = make_url(engine.url).render_as_string(hide_password=False)
            seconds = _ingest_command(csv, target, Path(folder))
        rows.append(row("`aicash data ingest` 1M-row CSV, PostgreSQL", seconds, "s", "< 30 s", seconds < 30))

    compute_indicators(one.iloc[:10_000])  # warm-up
    seconds = min(timed(lambda: compute_indicators(one)) for _ in range(3))
    rate = len(one) / seconds
    rows.append(row("indicators, 1M bars (one series)", rate, "bars/s", ">= 200,000 bars/s", rate >= 200_000))
    per_symbol = pd.concat([c.assign(symbol=s, timeframe="1h") for s, c in universe], ignore_index=True)
    seconds = min(timed(lambda: with_indicators(per_symbol)) for _ in range(3))
    rate = len(per_symbol) / seconds
    rows.append(row("indicators, 1M bars over 10 symbols (with_indicators)", rate, "bars/s", ">= 200,000 bars/s",
                    rate >= 200_000))
    return rows
