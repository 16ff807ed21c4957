"""Candle storage: batched upserts in one transaction (COPY on PostgreSQL), reads and summaries."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime

import pandas as pd
from sqlalchemy import Connection, Engine, func, select

from aicash.db.models import MarketCandle
from aicash.indicators import OHLCV_COLUMNS
from aicash.market.summary import SeriesSummary, summarize  # noqa: F401 - re-exported

Progress = Callable[[int], None]
BATCH_ROWS = 50_000
_SQLITE_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's own DateTime storage format on SQLite
_UPDATE = ", ".join(f"{c} = excluded.{c}" for c in OHLCV_COLUMNS)
_COLUMNS = ("symbol", "timeframe", "ts", *OHLCV_COLUMNS)
# Statements built once from the constants above; values always travel as bound parameters or COPY data.
_CONFLICT = f"ON CONFLICT (symbol, timeframe, ts) DO UPDATE SET {_UPDATE}"
_PLACEHOLDERS = ", ".join("?" * len(_COLUMNS))
_SQLITE_UPSERT = f"INSERT INTO market_candles ({', '.join(_COLUMNS)}) VALUES ({_PLACEHOLDERS}) {_CONFLICT}"  # noqa: S608
_PG_MERGE = f"INSERT INTO market_candles SELECT {', '.join(_COLUMNS)} FROM candles_in {_CONFLICT}"  # noqa: S608


def upsert_candles(
    engine: Engine, symbol: str, timeframe: str, candles: pd.DataFrame, progress: Progress | None = None
) -> int:
    """Insert or update `candles` (ts, open, high, low, close, volume) in one transaction; returns rows."""
    with engine.begin() as conn:
        upsert_in(conn, symbol, timeframe, candles, progress)
    return len(candles)


def upsert_in(
    conn: Connection, symbol: str, timeframe: str, candles: pd.DataFrame, progress: Progress | None = None
) -> None:
    """The upsert inside the caller's transaction, so that several series (and a ledger) commit together."""
    if conn.dialect.name == "postgresql":
        _copy_upsert(conn, symbol, timeframe, candles, progress)
    else:
        _sqlite_upsert(conn, symbol, timeframe, candles, progress)


def last_bars(engine: Engine) -> dict[tuple[str, str], pd.Timestamp]:
    """The latest stored bar (UTC) of each (symbol, timeframe): where an incremental read starts."""
    t = MarketCandle.__table__
    query = select(t.c.symbol, t.c.timeframe, func.max(t.c.ts)).group_by(t.c.symbol, t.c.timeframe)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    stamps = {(sym, tf): pd.Timestamp(last) for sym, tf, last in rows}
    return {key: ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC") for key, ts in stamps.items()}


def _sqlite_upsert(
    conn: Connection, symbol: str, timeframe: str, candles: pd.DataFrame, progress: Progress | None
) -> None:
    for start in range(0, len(candles), BATCH_ROWS):
        part = candles.iloc[start : start + BATCH_ROWS]
        stamps = part["ts"].dt.tz_convert("UTC").dt.strftime(_SQLITE_TS_FORMAT)
        rows = zip(
            [symbol] * len(part), [timeframe] * len(part), stamps, *(part[c].tolist() for c in OHLCV_COLUMNS),
            strict=True,
        )
        conn.exec_driver_sql(_SQLITE_UPSERT, list(rows))
        if progress:
            progress(len(part))


def _copy_upsert(
    conn: Connection, symbol: str, timeframe: str, candles: pd.DataFrame, progress: Progress | None
) -> None:
    """COPY (psycopg 3) into a temporary table, then one INSERT ... ON CONFLICT into market_candles."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    cursor.execute("CREATE TEMP TABLE candles_in (LIKE market_candles INCLUDING DEFAULTS) ON COMMIT DROP")
    for start in range(0, len(candles), BATCH_ROWS):
        part = candles.iloc[start : start + BATCH_ROWS]
        frame = part.assign(symbol=symbol, timeframe=timeframe, ts=part["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00"))
        buf = io.StringIO()
        frame[list(_COLUMNS)].to_csv(buf, index=False, header=False, float_format="%.17g")
        with cursor.copy(f"COPY candles_in ({', '.join(_COLUMNS)}) FROM STDIN WITH (FORMAT csv)") as copy:
            copy.write(buf.getvalue())
        if progress:
            progress(len(part))
    cursor.execute(_PG_MERGE)
    cursor.execute("DROP TABLE candles_in")  # the next series of the same transaction makes its own
    cursor.close()


def load_candles(
    engine: Engine,
    symbols: list[str] | None = None,
    timeframe: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Candles as a frame (symbol, timeframe, ts as UTC, OHLCV), sorted by symbol, timeframe and time."""
    table = MarketCandle.__table__
    query = select(*(table.c[c] for c in _COLUMNS))
    if symbols:
        query = query.where(table.c.symbol.in_(symbols))
    if timeframe:
        query = query.where(table.c.timeframe == timeframe)
    if start is not None:
        query = query.where(table.c.ts >= start)
    if end is not None:
        query = query.where(table.c.ts <= end)
    query = query.order_by(table.c.symbol, table.c.timeframe, table.c.ts)
    with engine.connect() as conn:
        frame = pd.read_sql(query, conn)
    ts = pd.to_datetime(frame["ts"])
    frame["ts"] = ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")
    return frame
