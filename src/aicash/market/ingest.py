"""Ingestion use cases: a file, a packaged sample or synthetic candles into the candle store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, func, select

from aicash.db.models import MarketCandle
from aicash.market.candles import check_timeframe, normalize_symbol, read_candle_file
from aicash.market.store import Progress, upsert_candles


@dataclass(frozen=True)
class IngestResult:
    """Rows written for one series and how many of them were new."""

    symbol: str
    timeframe: str
    rows: int
    new: int
    first: pd.Timestamp
    last: pd.Timestamp

    @property
    def updated(self) -> int:
        return self.rows - self.new


def count_bars(engine: Engine, symbol: str, timeframe: str) -> int:
    t = MarketCandle.__table__
    query = select(func.count()).where(t.c.symbol == symbol, t.c.timeframe == timeframe)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def ingest_frame(
    engine: Engine, candles: pd.DataFrame, symbol: str, timeframe: str, progress: Progress | None = None
) -> IngestResult:
    """Upsert validated candles for one series in one transaction."""
    symbol, timeframe = normalize_symbol(symbol), check_timeframe(timeframe)
    before = count_bars(engine, symbol, timeframe)
    upsert_candles(engine, symbol, timeframe, candles, progress)
    new = count_bars(engine, symbol, timeframe) - before
    return IngestResult(symbol, timeframe, len(candles), new, candles["ts"].iloc[0], candles["ts"].iloc[-1])


def ingest_file(
    engine: Engine, path: Path, symbol: str, timeframe: str, progress: Progress | None = None
) -> IngestResult:
    """Validate the whole file first, then write it; a bad file raises `InputFileError` and writes nothing."""
    symbol, timeframe = normalize_symbol(symbol), check_timeframe(timeframe)
    return ingest_frame(engine, read_candle_file(path), symbol, timeframe, progress)
