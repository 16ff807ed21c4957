"""SQL source: the trading application's own database, read through SQLAlchemy from `--table` or `--query`.

The source is asked only for the rows after the last stored bar of each series (one condition per known series,
and every row of a series not stored yet), in the order of series and time, in batches. Timestamps are compared
and read in UTC.
"""

from __future__ import annotations

from itertools import product

import pandas as pd
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    FromClause,
    MetaData,
    Table,
    and_,
    column,
    create_engine,
    inspect,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.exc import DBAPIError, NoSuchTableError

from aicash.db.engine import is_unreachable
from aicash.market.sources import (
    TARGETS,
    SeriesKey,
    SourceError,
    SourceFaultsError,
    SourceRun,
    SourceSpec,
    Tracker,
    only_new,
    store_new,
    validate_mapped,
)
from aicash.market.validation import FaultReport, InputFileError

BATCH_ROWS = 50_000


def _reason(exc: BaseException) -> str:
    """The driver's reason on one line."""
    orig = getattr(exc, "orig", None) or exc
    return " ".join((str(orig).strip().splitlines() or [type(orig).__name__])[0].split())


def _source_engine(spec: SourceSpec) -> Engine:
    try:
        return create_engine(spec.sql_url())
    except ImportError as exc:
        raise SourceError(f"--from {spec.shown()}: the database driver is not installed ({exc.name}): install it "
                          "in the platform's environment, or use postgresql:// or sqlite:///") from None


def _relation(conn: Connection, spec: SourceSpec) -> FromClause:
    """The table, or the query as a subquery, whose columns the mapping refers to."""
    if spec.table is not None:
        schema, _, name = spec.table.rpartition(".")
        try:
            return Table(name, MetaData(), schema=schema or None, autoload_with=conn)
        except NoSuchTableError:
            tables = ", ".join(inspect(conn).get_table_names(schema=schema or None)[:20]) or "none"
            raise SourceError(f"--table {spec.table!r}: no such table in {spec.shown()} (tables: {tables}); check "
                              "the name (schema.table for another schema) or use --query") from None
    query = spec.query.strip().rstrip(";") if spec.query else ""
    probe = f"SELECT * FROM ({query}) AS src LIMIT 0"  # noqa: S608 - the operator's own query on their database
    try:
        keys = list(conn.execute(text(probe)).keys())
    except DBAPIError as exc:
        raise SourceError(f"--query: the source refused it: {_reason(exc)}; check the SQL (one SELECT)") from None
    return text(query).columns(*(column(k) for k in keys)).subquery("src")


def _needed(spec: SourceSpec) -> list[str]:
    fixed = {"symbol": spec.symbol, "timeframe": spec.timeframe}
    return [t for t in TARGETS if fixed.get(t) is None]


def map_columns(relation: FromClause, spec: SourceSpec) -> dict[str, ColumnElement]:
    """Each needed candle column's source column (exact name, else the one name equal but for case)."""
    found = {c.name: c for c in relation.columns}
    folded = {name.lower(): c for name, c in found.items()}
    out: dict[str, ColumnElement] = {}
    for target in _needed(spec):
        name = spec.columns.source(target)
        col = found.get(name) if name in found else folded.get(name.lower())
        if col is None:
            alt = f" or pass --{target}" if target in {"symbol", "timeframe"} else ""
            raise SourceError(f"{spec.columns.option(target)}: the source has no column {name!r} (its columns: "
                              f"{', '.join(found)}); map {target} with --column {target}=NAME{alt}")
        out[target] = col
    return out


def _spellings(name: str, value: str) -> list[str]:
    """How the source may write a stored key: symbols are stored upper-cased, so `eurusd` is EURUSD too. Plain
    values (no function on the column) keep the source's indexes usable; other spellings are read again and
    dropped after validation, so a second run still adds 0 bars."""
    return sorted({value, value.lower()}) if name == "symbol" else [value]


def after_last(
    cols: dict[str, ColumnElement], spec: SourceSpec, last: dict[SeriesKey, pd.Timestamp]
) -> ColumnElement | None:
    """Rows after the last stored bar of their series, and every row of a series not stored yet."""
    ts = cols["timestamp"]
    fixed = {"symbol": spec.symbol, "timeframe": spec.timeframe}
    varying = [n for n, value in fixed.items() if value is None]
    known = [
        (dict(zip(("symbol", "timeframe"), key, strict=True)), stamp.to_pydatetime())
        for key, stamp in last.items()
        if all(fixed[n] in (None, v) for n, v in zip(("symbol", "timeframe"), key, strict=True))
    ]
    if not varying:
        return ts > known[0][1] if known else None
    if not known:
        return None
    per_series = [
        and_(*(cols[n].in_(_spellings(n, series[n])) for n in varying), ts > stamp) for series, stamp in known
    ]
    keys = sorted({k for series, _ in known for k in product(*(_spellings(n, series[n]) for n in varying))})
    new = cols[varying[0]].not_in([k[0] for k in keys]) if len(varying) == 1 else tuple_(
        *(cols[n] for n in varying)).not_in(keys)
    return or_(*per_series, new, *(cols[n].is_(None) for n in varying))


def _read(conn: Connection, spec: SourceSpec, last: dict[SeriesKey, pd.Timestamp], track: Tracker) -> pd.DataFrame:
    relation = _relation(conn, spec)
    cols = map_columns(relation, spec)
    query = select(*(c.label(spec.columns.source(t)) for t, c in cols.items()))
    if (where := after_last(cols, spec, last)) is not None:
        query = query.where(where)
    query = query.order_by(*(cols[n] for n in ("symbol", "timeframe") if n in cols), cols["timestamp"])
    advance = track(f"read {spec.table or 'query'}", None)
    chunks = []
    for chunk in pd.read_sql(query, conn.execution_options(stream_results=True), chunksize=BATCH_ROWS):
        chunks.append(chunk)
        advance(len(chunk))
    if not chunks:
        return pd.DataFrame(columns=[str(c.name) for c in query.selected_columns])
    return pd.concat(chunks, ignore_index=True)


def ingest_sql(spec: SourceSpec, engine: Engine, last: dict[SeriesKey, pd.Timestamp], track: Tracker) -> SourceRun:
    """Read the rows after the last stored bars, validate them all, store them in one transaction."""
    source = _source_engine(spec)
    try:
        with source.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET TIME ZONE 'UTC'")
            raw = _read(conn, spec, last, track)
    except DBAPIError as exc:
        what = "is unreachable" if is_unreachable(exc) else "refused the read"
        raise SourceError(f"--from {spec.shown()}: the source database {what}: {_reason(exc)}; check the URL, "
                          f"{'--table' if spec.table else '--query'} and that the server accepts connections from "
                          "here") from None
    finally:
        source.dispose()
    name = f"{spec.shown()} {'table ' + spec.table if spec.table else 'query'}"
    run = SourceRun(name, rows_read=len(raw))
    try:
        series = validate_mapped(raw, 1, FaultReport(name, unit="row"), spec, spec.symbol, spec.timeframe)
    except InputFileError as exc:
        raise SourceFaultsError([exc.report]) from None
    run.added = only_new(series, last)
    store_new(engine, run.added, track)
    return run
