"""The feature store's offline tables, derived from `market_candles`, written for Feast to read.

- indicators: one row per bar after the warm-up: symbol, timeframe, event_timestamp (the bar's own `ts`) and
  `INDICATOR_COLUMNS`, computed per series by `with_indicators` over the series' whole history, so each row holds
  exactly what the candles up to that bar give (nothing from later bars).
- windows: one row per series: the model window (see `aicash.windows`) ending at the last bar at or before the
  materialization end. Only what the online store needs is built, never one window per bar.

Local mode writes Parquet files under AICASH_HOME/features/offline; cluster mode writes tables in the PostgreSQL
schema `feast` of the platform database (binary COPY, each table replaced in one transaction).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sqlalchemy import Connection, Engine, func, select, text

from aicash.db.models import MarketCandle
from aicash.indicators import INDICATOR_COLUMNS, OHLCV_COLUMNS, with_indicators
from aicash.model_input import WINDOW_BARS
from aicash.windows import flatten_window, window_matrix

PG_SCHEMA = "feast"  # PostgreSQL schema holding everything of the feature store (offline tables, online, registry)
INDICATORS_TABLE = "candle_indicators"
WINDOWS_TABLE = "indicator_windows"
TIMESTAMP_FIELD = "event_timestamp"
WINDOW_FIELD = "window_flat"

SeriesProgress = Callable[[int, int], None]  # (series done, series in all)

_CANDLE_READ = ("ts", *OHLCV_COLUMNS)
_PG_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")
_PG_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" * 2
_PG_COPY_TRAILER = b"\xff\xff"


class FeatureInputError(ValueError):
    """The candles cannot give features for the request (no candles, an empty or inverted date range)."""


@dataclass(frozen=True)
class SeriesFeatures:
    """One series' indicator rows (ts + INDICATOR_COLUMNS, sorted by ts) and its window at the end asked for."""

    symbol: str
    timeframe: str
    indicators: pd.DataFrame
    window_end: pd.Timestamp | None
    window: np.ndarray | None  # flattened float32, None when fewer than WINDOW_BARS bars up to the end


@dataclass(frozen=True)
class OfflineTables:
    """What `write_offline_tables` wrote."""

    series: int
    rows: int
    windows: int
    first: pd.Timestamp | None
    last: pd.Timestamp | None


def offline_paths(home: Path) -> tuple[Path, Path]:
    """The local Parquet files (indicators, windows) under AICASH_HOME; absolute, as Feast's FileSource needs."""
    folder = home.resolve() / "features" / "offline"
    return folder / f"{INDICATORS_TABLE}.parquet", folder / f"{WINDOWS_TABLE}.parquet"


def utc(value: datetime | str | pd.Timestamp) -> pd.Timestamp:
    """A UTC timestamp; naive values are taken as UTC."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def check_range(start: datetime | None, end: datetime | None) -> None:
    """Raise `FeatureInputError` when `start` is after `end`."""
    if start is not None and end is not None and utc(start) > utc(end):
        raise FeatureInputError(f"--start {utc(start).isoformat()} is after --end {utc(end).isoformat()}: swap them")


def candle_span(engine: Engine, start: datetime | None = None, end: datetime | None = None) -> tuple[int, pd.Timestamp]:
    """(candles in [start, end], time of the last of them); raises `FeatureInputError` when there are none."""
    table = MarketCandle.__table__
    query = select(func.count(), func.max(table.c.ts))
    if start is not None:
        query = query.where(table.c.ts >= utc(start).to_pydatetime())
    if end is not None:
        query = query.where(table.c.ts <= utc(end).to_pydatetime())
    with engine.connect() as conn:
        count, last = conn.execute(query).one()
    ranged = start is not None or end is not None
    if not count and not ranged:
        raise FeatureInputError("no candles yet: ingest some first (`aicash data ingest --sample eurusd-1h`)")
    if not count:
        first = utc(start).isoformat() if start is not None else "the first bar"
        upto = utc(end).isoformat() if end is not None else "the last bar"
        raise FeatureInputError(f"no candles between {first} and {upto}: widen --start/--end (see `aicash data list`)")
    return int(count), utc(last)


def series_keys(engine: Engine) -> list[tuple[str, str]]:
    """Every (symbol, timeframe) with candles."""
    query = text("SELECT DISTINCT symbol, timeframe FROM market_candles ORDER BY symbol, timeframe")
    with engine.connect() as conn:
        return [(row[0], row[1]) for row in conn.execute(query)]


def read_series(conn: Connection, symbol: str, timeframe: str) -> pd.DataFrame:
    """One series' candles (ts as UTC, OHLCV) sorted by time, read in bulk (COPY on PostgreSQL)."""
    sql = f"SELECT {', '.join(_CANDLE_READ)} FROM market_candles WHERE symbol = %s AND timeframe = %s ORDER BY ts"  # noqa: S608
    if conn.dialect.name == "postgresql":
        return _read_series_pg(conn, sql, symbol, timeframe)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(sql.replace("%s", "?"), (symbol, timeframe))
    frame = pd.DataFrame(cursor.fetchall(), columns=list(_CANDLE_READ))
    cursor.close()
    frame["ts"] = pd.to_datetime(frame["ts"], format="ISO8601", utc=True)
    return frame.astype(dict.fromkeys(OHLCV_COLUMNS, "float64"))


def _read_series_pg(conn: Connection, sql: str, symbol: str, timeframe: str) -> pd.DataFrame:
    buffer = io.BytesIO()
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)", (symbol, timeframe)) as copy:
        for chunk in copy:
            buffer.write(chunk)
    cursor.close()
    buffer.seek(0)
    types = {"ts": pa.timestamp("us", tz="UTC"), **dict.fromkeys(OHLCV_COLUMNS, pa.float64())}
    table = pa_csv.read_csv(
        buffer,
        read_options=pa_csv.ReadOptions(column_names=list(_CANDLE_READ)),
        convert_options=pa_csv.ConvertOptions(column_types=types),
    )
    return table.to_pandas()


def series_features(
    engine: Engine, end: datetime | None = None, progress: SeriesProgress | None = None
) -> list[SeriesFeatures]:
    """Indicators of every series over its whole history, and each series' window as of `end` (default: last bar)."""
    keys = series_keys(engine)
    cutoff = utc(end) if end is not None else None
    out: list[SeriesFeatures] = []
    with engine.connect() as conn:
        for done, (symbol, timeframe) in enumerate(keys, start=1):
            indicators = with_indicators(read_series(conn, symbol, timeframe)).reset_index(drop=True)
            indicators = indicators[["ts", *INDICATOR_COLUMNS]]
            upto = indicators if cutoff is None else indicators[indicators["ts"] <= cutoff]
            window = flatten_window(window_matrix(upto)) if len(upto) >= WINDOW_BARS else None
            window_end = upto["ts"].iloc[-1] if window is not None else None
            out.append(SeriesFeatures(symbol, timeframe, indicators, window_end, window))
            if progress:
                progress(done, len(keys))
    return out


def write_offline_tables(engine: Engine, home: Path, series: list[SeriesFeatures]) -> OfflineTables:
    """Replace the offline tables with `series`: Parquet under `home` (SQLite) or tables in schema `feast`."""
    if engine.dialect.name == "postgresql":
        _write_pg(engine, series)
    else:
        _write_parquet(home, series)
    stamps = [s.indicators["ts"] for s in series if len(s.indicators)]
    return OfflineTables(
        series=len(series),
        rows=sum(len(s.indicators) for s in series),
        windows=sum(s.window is not None for s in series),
        first=min(t.iloc[0] for t in stamps) if stamps else None,
        last=max(t.iloc[-1] for t in stamps) if stamps else None,
    )


def ensure_offline_tables(engine: Engine, home: Path) -> None:
    """Create empty offline tables when there are none yet, so Feast can apply definitions before any data."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:  # `_write_pg` creates the schema when missing (no CREATE on it needed here)
            schema = conn.exec_driver_sql(f"SELECT to_regnamespace('{PG_SCHEMA}')").scalar()
            exists = schema and conn.exec_driver_sql(f"SELECT to_regclass('{PG_SCHEMA}.{INDICATORS_TABLE}')").scalar()
        if not exists:
            _write_pg(engine, [])
    elif not all(path.is_file() for path in offline_paths(home)):
        _write_parquet(home, [])


# --- Parquet (local) -------------------------------------------------------------------------------------------

_ENTITY_SCHEMA = [("symbol", pa.string()), ("timeframe", pa.string()), (TIMESTAMP_FIELD, pa.timestamp("us", tz="UTC"))]
INDICATORS_SCHEMA = pa.schema([*_ENTITY_SCHEMA, *[(c, pa.float64()) for c in INDICATOR_COLUMNS]])
WINDOWS_SCHEMA = pa.schema([*_ENTITY_SCHEMA, (WINDOW_FIELD, pa.list_(pa.float32()))])


def _indicator_batches(series: list[SeriesFeatures]) -> Iterator[pa.RecordBatch]:
    for s in series:
        n = len(s.indicators)
        columns = [
            pa.array([s.symbol] * n, pa.string()),
            pa.array([s.timeframe] * n, pa.string()),
            pa.array(s.indicators["ts"].dt.tz_convert("UTC").astype("datetime64[us, UTC]")),
            *(pa.array(s.indicators[c].to_numpy(dtype=np.float64)) for c in INDICATOR_COLUMNS),
        ]
        yield pa.RecordBatch.from_arrays(columns, schema=INDICATORS_SCHEMA)


def _windows_table(series: list[SeriesFeatures]) -> pa.Table:
    rows = [s for s in series if s.window is not None]
    return pa.Table.from_pydict(
        {
            "symbol": [s.symbol for s in rows],
            "timeframe": [s.timeframe for s in rows],
            TIMESTAMP_FIELD: pa.array([s.window_end for s in rows], pa.timestamp("us", tz="UTC")),
            WINDOW_FIELD: pa.array([s.window for s in rows], pa.list_(pa.float32())),
        },
        schema=WINDOWS_SCHEMA,
    )


def _replace_file(path: Path, table: pa.Table) -> None:
    """Write next to `path`, then rename over it: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".parquet.partial")
    pq.write_table(table, partial)
    partial.replace(path)


def _write_parquet(home: Path, series: list[SeriesFeatures]) -> None:
    indicators_path, windows_path = offline_paths(home)
    _replace_file(indicators_path, pa.Table.from_batches(list(_indicator_batches(series)), schema=INDICATORS_SCHEMA))
    _replace_file(windows_path, _windows_table(series))


# --- PostgreSQL (cluster) --------------------------------------------------------------------------------------

_PG_ENTITY_COLUMNS = "symbol varchar(32) NOT NULL, timeframe varchar(8) NOT NULL, event_timestamp timestamptz NOT NULL"
_PG_INDICATORS_DDL = (
    f"CREATE TABLE {PG_SCHEMA}.{INDICATORS_TABLE} ({_PG_ENTITY_COLUMNS}, "
    + ", ".join(f"{c} double precision NOT NULL" for c in INDICATOR_COLUMNS)
    + ")"
)
# Added after the bulk load (one sorted build beats maintaining it row by row); point-in-time joins range-scan it.
_PG_INDICATORS_KEY = (
    f"ALTER TABLE {PG_SCHEMA}.{INDICATORS_TABLE} ADD PRIMARY KEY (symbol, timeframe, event_timestamp)"
)
_PG_WINDOWS_DDL = (
    f"CREATE TABLE {PG_SCHEMA}.{WINDOWS_TABLE} ({_PG_ENTITY_COLUMNS}, {WINDOW_FIELD} real[] NOT NULL, "
    "PRIMARY KEY (symbol, timeframe, event_timestamp))"
)


def _binary_rows(s: SeriesFeatures) -> bytes:
    """One series' indicator rows in PostgreSQL's binary COPY format, built as a numpy record array (no Python loop
    over rows): within a series every field has a fixed width, symbol and timeframe included."""
    symbol, timeframe = s.symbol.encode(), s.timeframe.encode()
    layout: list[tuple[str, str]] = [
        ("fields", ">i2"), ("symbol_len", ">i4"), ("symbol", f"S{len(symbol)}"),
        ("timeframe_len", ">i4"), ("timeframe", f"S{len(timeframe)}"), ("ts_len", ">i4"), ("ts", ">i8"),
    ]
    for i, column in enumerate(INDICATOR_COLUMNS):
        layout += [(f"len_{i}", ">i4"), (column, ">f8")]
    records = np.empty(len(s.indicators), dtype=np.dtype(layout))
    records["fields"] = 3 + len(INDICATOR_COLUMNS)
    records["symbol_len"], records["symbol"] = len(symbol), symbol
    records["timeframe_len"], records["timeframe"] = len(timeframe), timeframe
    stamps = s.indicators["ts"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[us]")
    records["ts_len"], records["ts"] = 8, (stamps - _PG_EPOCH).astype(np.int64)
    for i, column in enumerate(INDICATOR_COLUMNS):
        records[f"len_{i}"], records[column] = 8, s.indicators[column].to_numpy(dtype=np.float64)
    return records.tobytes()


# Each table's columns as `format_type` gives them, in order: tables of another shape are re-created.
_PG_SHAPE = {
    INDICATORS_TABLE: [("symbol", "character varying(32)"), ("timeframe", "character varying(8)"),
                       (TIMESTAMP_FIELD, "timestamp with time zone"),
                       *((c, "double precision") for c in INDICATOR_COLUMNS)],
    WINDOWS_TABLE: [("symbol", "character varying(32)"), ("timeframe", "character varying(8)"),
                    (TIMESTAMP_FIELD, "timestamp with time zone"), (WINDOW_FIELD, "real[]")],
}
_PG_COLUMNS = f"""
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), pg_has_role(c.relowner, 'USAGE')
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = '{PG_SCHEMA}' AND c.relname IN ('{INDICATORS_TABLE}', '{WINDOWS_TABLE}')
  AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY c.relname, a.attnum
"""  # noqa: S608 - constants only


def _pg_tables(conn: Connection) -> tuple[bool, bool]:
    """(both offline tables exist with this version's columns, this login owns them)."""
    found: dict[str, list[tuple[str, str]]] = {}
    owned = True
    for table, column, kind, owner in conn.exec_driver_sql(_PG_COLUMNS):
        found.setdefault(table, []).append((column, kind))
        owned = owned and owner
    return found == _PG_SHAPE, owned and bool(found)


def _write_pg(engine: Engine, series: list[SeriesFeatures]) -> None:
    """Replace both tables' rows in one transaction. When they exist with this version's columns: TRUNCATE, then
    COPY (DML only, so a login in aicash_training may do it; the tables, their key and their owner stay). Otherwise
    (none yet, or another shape) DROP and CREATE them, which only their owner may (`aicash features apply` as the
    owner). ANALYZE is the owner's too (a non-owner's is skipped; autovacuum analyzes the new rows)."""
    with engine.begin() as conn:
        current, owned = _pg_tables(conn)
        if current:
            conn.exec_driver_sql(f"TRUNCATE {PG_SCHEMA}.{INDICATORS_TABLE}, {PG_SCHEMA}.{WINDOWS_TABLE}")
        else:
            if conn.exec_driver_sql(f"SELECT to_regnamespace('{PG_SCHEMA}')").scalar() is None:
                conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}")
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {PG_SCHEMA}.{INDICATORS_TABLE}, {PG_SCHEMA}.{WINDOWS_TABLE}")
            conn.exec_driver_sql(_PG_INDICATORS_DDL)
            conn.exec_driver_sql(_PG_WINDOWS_DDL)
            owned = True
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY {PG_SCHEMA}.{INDICATORS_TABLE} FROM STDIN WITH (FORMAT binary)") as copy:
            copy.write(_PG_COPY_HEADER)
            for s in series:
                copy.write(_binary_rows(s))
            copy.write(_PG_COPY_TRAILER)
        windows = [
            (s.symbol, s.timeframe, s.window_end.to_pydatetime(), s.window.tolist())
            for s in series
            if s.window is not None and s.window_end is not None
        ]
        if windows:
            cursor.executemany(
                f"INSERT INTO {PG_SCHEMA}.{WINDOWS_TABLE} VALUES (%s, %s, %s, %s::real[])",  # noqa: S608
                windows,
            )
        cursor.close()
        if not current:
            conn.exec_driver_sql(_PG_INDICATORS_KEY)
        if owned:
            conn.exec_driver_sql(f"ANALYZE {PG_SCHEMA}.{INDICATORS_TABLE}")
