"""`aicash data ingest --from URI`: what a source URI names, how the source's columns map to candle columns, and
what every source ends with: validation like a file, only the bars after the last stored one of each series, and
one transaction for the whole run.

Two kinds of source: an object-store prefix (`s3://bucket/prefix/`, `aicash.market.s3_source`) and a SQL database
(a SQLAlchemy URL with `--table` or `--query`, `aicash.market.sql_source`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

import pandas as pd
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from aicash.indicators import OHLCV_COLUMNS
from aicash.market.candles import SeriesCandles, check_timeframe, normalize_symbol, validate_series_rows
from aicash.market.store import Progress, last_bars, upsert_in
from aicash.market.validation import FaultReport, InputFileError

# A stage of a long read or write: its description and total (None when unknown) give the callback to advance it.
Tracker = Callable[[str, int | None], Progress]
SeriesKey = tuple[str, str]
TARGETS: tuple[str, ...] = ("timestamp", *OHLCV_COLUMNS, "symbol", "timeframe")
_ALIASES = {"ts": "timestamp", "time": "timestamp"}


class SourceError(ValueError):
    """A source option is wrong or the source cannot be read; the message names the option and the fix."""


class SourceFaultsError(ValueError):
    """Bad rows in one or more of a run's inputs, each named by line (or row) and column; nothing was written."""

    def __init__(self, reports: list[FaultReport]) -> None:
        super().__init__("\n".join(report.render() for report in reports))
        self.reports = reports


@dataclass(frozen=True)
class ColumnMap:
    """Which source column holds each candle column (`--column TARGET=SOURCE`); unmapped ones keep their name."""

    names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, options: list[str]) -> ColumnMap:
        names: dict[str, str] = {}
        for option in options:
            target, sep, source = (part.strip() for part in option.partition("="))
            target = _ALIASES.get(target.lower(), target.lower())
            if not sep or not source or target not in TARGETS:
                raise SourceError(f"--column {option!r}: use TARGET=SOURCE with TARGET one of {', '.join(TARGETS)}, "
                                  "e.g. --column timestamp=time --column close=last_price")
            if target in names:
                raise SourceError(f"--column {target}= is given twice: map each candle column once")
            names[target] = source
        return cls(names)

    def source(self, target: str) -> str:
        return self.names.get(target, target)

    def option(self, target: str) -> str:
        """How the user named the mapping (for messages)."""
        return f"--column {target}={self.names[target]}" if target in self.names else f"--column {target}=NAME"


@dataclass(frozen=True)
class SourceSpec:
    """What `--from` and its companion options ask for; checked before any connection is made."""

    uri: str
    columns: ColumnMap
    symbol: str | None
    timeframe: str | None
    table: str | None = None
    query: str | None = None

    @property
    def scheme(self) -> str:
        return urlsplit(self.uri).scheme.lower()

    def sql_url(self) -> URL:
        uri = "postgresql://" + self.uri.removeprefix("postgres://") if self.scheme == "postgres" else self.uri
        return make_url(uri)

    def shown(self) -> str:
        """The URI without a password, fit for messages."""
        return self.uri if self.scheme == "s3" else self.sql_url().render_as_string(hide_password=True)


def parse_source(
    uri: str, *, table: str | None, query: str | None, columns: list[str], symbol: str | None, timeframe: str | None
) -> SourceSpec:
    """Check `--from` and the options that go with it; `SourceError` names the option and the fix."""
    mapped = ColumnMap.parse(columns)
    for key, given in (("symbol", symbol), ("timeframe", timeframe)):
        if given is not None and key in mapped.names:
            raise SourceError(f"--{key} and --column {key}=... both give the {key}: keep one")
    spec = SourceSpec(
        uri.strip(), mapped, normalize_symbol(symbol) if symbol else None,
        check_timeframe(timeframe) if timeframe else None, table, query,
    )
    parts = urlsplit(spec.uri)
    if not parts.scheme or "://" not in spec.uri:
        raise SourceError(f"--from {uri!r} is not a source URI: use s3://bucket/prefix/ or a database URL such as "
                          "postgresql://user@host:5432/trading with --table or --query")
    if spec.scheme == "s3":
        if not parts.netloc:
            raise SourceError(f"--from {uri!r} names no bucket: use s3://bucket/prefix/")
        if table or query:
            raise SourceError("--table and --query go with a database URL, not with an s3:// prefix")
        return spec
    try:
        spec.sql_url().get_dialect()
    except NoSuchModuleError:
        raise SourceError(f"--from: unknown scheme {parts.scheme!r}: use s3://bucket/prefix/ or a database URL "
                          "(postgresql://, sqlite:///) with --table or --query") from None
    except (ArgumentError, ValueError):  # the parser's message would quote the URL, password included
        raise SourceError("--from: not a valid database URL; use s3://bucket/prefix/ or a database URL such as "
                          "postgresql://user@host:5432/trading") from None
    if (table is None) == (query is None):
        raise SourceError("a database source needs exactly one of --table NAME or --query 'SELECT ...'")
    return spec


def validate_mapped(
    raw: pd.DataFrame, first_line: int, report: FaultReport, spec: SourceSpec, symbol: str | None,
    timeframe: str | None,
) -> list[SeriesCandles]:
    """Rename the source's columns to candle columns and validate like a file; faults name the source's columns."""
    back: dict[str, str] = {}
    for target, src in spec.columns.names.items():
        col = src if src in raw.columns else src.lower()  # files' columns are lower-cased
        if col in raw.columns:
            back[target] = col
        else:
            found = ", ".join(map(str, raw.columns)) or "none"
            report.add("missing column", 1 if first_line == 2 else None, src,
                       f"{spec.columns.option(target)} names a column the source lacks (found: {found})")
    if report:
        raise InputFileError(report)
    unused = [t for t in spec.columns.names if t in raw.columns and t not in back.values()]  # mapped elsewhere
    renamed = raw.drop(columns=unused).rename(columns={col: target for target, col in back.items()})
    try:
        return validate_series_rows(renamed, first_line, report, symbol, timeframe)
    except InputFileError as exc:
        exc.report.faults = [replace(f, column=back.get(f.column, f.column)) for f in exc.report.faults]
        raise InputFileError(exc.report) from None


@dataclass
class SourceRun:
    """What one `--from` run read and stored."""

    source: str
    rows_read: int = 0
    added: dict[SeriesKey, pd.DataFrame] = field(default_factory=dict)
    objects_read: int = 0
    objects_skipped: int = 0

    @property
    def rows_added(self) -> int:
        return sum(len(c) for c in self.added.values())


def only_new(series: list[SeriesCandles], last: dict[SeriesKey, pd.Timestamp]) -> dict[SeriesKey, pd.DataFrame]:
    """Per series, the bars after its last stored one; series read from several files are merged (a later file's
    bar wins over an earlier file's bar of the same time)."""
    parts: dict[SeriesKey, list[pd.DataFrame]] = {}
    for s in series:
        parts.setdefault((s.symbol, s.timeframe), []).append(s.candles)
    out: dict[SeriesKey, pd.DataFrame] = {}
    for key, frames in parts.items():
        merged = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        if len(frames) > 1:
            merged = merged.drop_duplicates("ts", keep="last").sort_values("ts", ignore_index=True)
        if key in last:
            merged = merged[merged["ts"] > last[key]].reset_index(drop=True)
        if len(merged):
            out[key] = merged
    return out


def store_new(
    engine: Engine, series: dict[SeriesKey, pd.DataFrame], track: Tracker,
    also: Callable[[Connection], None] | None = None,
) -> None:
    """Write every series (and `also`, e.g. the ledger) in one transaction: all of it or nothing."""
    total = sum(len(c) for c in series.values())
    advance = track("store", total)
    with engine.begin() as conn:
        for (symbol, timeframe), candles in series.items():
            upsert_in(conn, symbol, timeframe, candles, advance)
        if also is not None:
            also(conn)


def run_source(spec: SourceSpec, engine: Engine, s3_endpoint_url: str | None, track: Tracker) -> SourceRun:
    """Read the source incrementally, validate everything, then store it in one transaction."""
    last = last_bars(engine)
    if spec.scheme == "s3":
        from aicash.market.s3_source import ingest_prefix

        return ingest_prefix(spec, engine, s3_endpoint_url, last, track)
    from aicash.market.sql_source import ingest_sql

    return ingest_sql(spec, engine, last, track)
