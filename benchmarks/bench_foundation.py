"""Foundation figures: ingesting 1,000,000 synthetic bars (SQLite, PostgreSQL) and indicator throughput."""

from __future__ import annotations

import pandas as pd

from aicash.indicators import compute_indicators
from aicash.market.ingest import ingest_frame
from aicash.market.synth import synth_universe
from benchmarks.common import Row, postgres_server, row, scratch_database, scratch_sqlite, timed

BARS = 1_000_000
SYMBOLS = 10


def _universe() -> list[tuple[str, pd.DataFrame]]:
    return list(synth_universe(SYMBOLS, BARS // SYMBOLS, seed=1, timeframe_step=pd.Timedelta("1h")))


def _ingest_all(engine, universe) -> None:  # type: ignore[no-untyped-def]
    for symbol, candles in universe:
        ingest_frame(engine, candles, symbol, "1h")


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
    compute_indicators(one.iloc[:10_000])  # warm-up
    seconds = min(timed(lambda: compute_indicators(one)) for _ in range(3))
    rate = len(one) / seconds
    rows.append(row("indicators, 1M bars", rate, "bars/s", ">= 200,000 bars/s", rate >= 200_000))
    return rows
