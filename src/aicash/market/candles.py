"""OHLCV candle files: reading and validating them into a clean frame ready to store."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from aicash.indicators import OHLCV_COLUMNS
from aicash.market.timeframes import TIMEFRAME_NAMES
from aicash.market.validation import (
    FaultReport,
    InputFileError,
    check_timestamps,
    line_numbers,
    parse_numbers,
    parse_timestamps,
    read_table,
    require_columns,
)

CANDLE_FILE_COLUMNS: tuple[str, ...] = ("timestamp", *OHLCV_COLUMNS)
TIMEFRAMES: dict[str, pd.Timedelta] = {
    tf: pd.Timedelta(tf.replace("m", "min").replace("w", "W")) for tf in TIMEFRAME_NAMES
}
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,31}$")


class BadSymbolError(ValueError):
    """A symbol or timeframe that the platform does not accept."""


def normalize_symbol(symbol: str) -> str:
    """Upper-cased symbol; 1-32 of A-Z, 0-9, '.', '_', '-' (for example EURUSD, BTC-USD)."""
    value = symbol.strip().upper()
    if not SYMBOL_PATTERN.fullmatch(value):
        raise BadSymbolError(
            f"--symbol {symbol[:40]!r} is not a valid symbol: use 1-32 letters, digits, '.', '_' or '-' (e.g. EURUSD)"
        )
    return value


def check_timeframe(timeframe: str) -> str:
    if timeframe not in TIMEFRAMES:
        raise BadSymbolError(f"--timeframe {timeframe!r} is not supported: use one of {', '.join(TIMEFRAMES)}")
    return timeframe


def validate_candles(raw: pd.DataFrame, first_line: int, source: str) -> pd.DataFrame:
    """A clean candle frame (ts as UTC, float prices) or `InputFileError` listing every fault."""
    report = FaultReport(source)
    require_columns(report, raw, CANDLE_FILE_COLUMNS, first_line)
    if report:
        raise InputFileError(report)
    lines = line_numbers(raw, first_line)
    ts = parse_timestamps(raw["timestamp"])
    check_timestamps(report, ts, raw["timestamp"], lines, "timestamp")
    values = parse_numbers(report, raw, list(OHLCV_COLUMNS), lines)
    _check_price_ranges(report, values, lines)
    if report:
        raise InputFileError(report)
    clean = values.assign(ts=ts.to_numpy())
    return clean[["ts", *OHLCV_COLUMNS]]


@dataclass(frozen=True)
class SeriesCandles:
    """Validated candles (ts, OHLCV; increasing ts) of one series read from a source."""

    symbol: str
    timeframe: str
    candles: pd.DataFrame


def validate_series_rows(
    raw: pd.DataFrame, first_line: int, report: FaultReport, symbol: str | None, timeframe: str | None
) -> list[SeriesCandles]:
    """Validate rows that may hold several series and split them per series, or raise `InputFileError` naming
    every fault. `symbol`/`timeframe` given (already checked) apply to every row; otherwise they are columns."""
    fixed = {"symbol": symbol, "timeframe": timeframe}
    require_columns(report, raw, (*CANDLE_FILE_COLUMNS, *(k for k, v in fixed.items() if v is None)), first_line)
    if report:
        raise InputFileError(report)
    lines = line_numbers(raw, first_line)
    keys = {
        name: _series_values(report, raw, name, fixed[name], lines, check)
        for name, check in (("symbol", symbol_or_none), ("timeframe", _valid_timeframe))
    }
    ts = parse_timestamps(raw["timestamp"])
    values = parse_numbers(report, raw, list(OHLCV_COLUMNS), lines)
    _check_price_ranges(report, values, lines)
    frame = values.assign(ts=ts, symbol=keys["symbol"], timeframe=keys["timeframe"])  # all on the raw rows' index
    out: list[SeriesCandles] = []
    for (sym, tf), part in frame.groupby(["symbol", "timeframe"], sort=True):
        pos = raw.index.get_indexer(part.index)
        check_timestamps(report, ts.iloc[pos], raw["timestamp"].iloc[pos], lines[pos], "timestamp")
        out.append(SeriesCandles(str(sym), str(tf), part[["ts", *OHLCV_COLUMNS]].reset_index(drop=True)))
    if report:
        raise InputFileError(report)
    return out


def symbol_or_none(value: str) -> str | None:
    """The upper-cased symbol when `value` is a valid one (see `normalize_symbol`), else None."""
    return value.upper() if SYMBOL_PATTERN.fullmatch(value.upper()) else None


def _valid_timeframe(value: str) -> str | None:
    return value if value in TIMEFRAMES else None


_KEY_HINTS = {"symbol": "1-32 letters, digits, '.', '_' or '-'", "timeframe": f"one of {', '.join(TIMEFRAMES)}"}


def _series_values(
    report: FaultReport, raw: pd.DataFrame, name: str, fixed: str | None, lines: np.ndarray,
    check: Callable[[str], str | None],
) -> pd.Series:
    """Each row's symbol or timeframe: the fixed value, or the column's checked (symbols upper-cased)."""
    if fixed is not None:
        return pd.Series(fixed, index=raw.index, dtype="string")
    text = raw[name].astype("string").str.strip()
    valid = {value: check(value) for value in text.dropna().unique()}
    out = text.map(valid, na_action="ignore").astype("string")
    for i in np.flatnonzero(out.isna().to_numpy()):
        cell = text.iloc[i]
        what = "is empty" if pd.isna(cell) or not cell else f"{str(cell)[:40]!r} is not a valid {name}"
        report.add(f"bad {name}", int(lines[i]), name, f"{what}: use {_KEY_HINTS[name]}")
    return out


def _check_price_ranges(report: FaultReport, v: pd.DataFrame, lines: np.ndarray) -> None:
    """low <= open, close <= high; volume >= 0 (rows with non-numbers are already reported)."""
    rules = (
        ("high below open", "high", v["high"] < v["open"], "high {high} is below open {open}"),
        ("high below close", "high", v["high"] < v["close"], "high {high} is below close {close}"),
        ("low above open", "low", v["low"] > v["open"], "low {low} is above open {open}"),
        ("low above close", "low", v["low"] > v["close"], "low {low} is above close {close}"),
        ("negative volume", "volume", v["volume"] < 0, "volume {volume} is negative"),
    )
    for kind, column, mask, template in rules:
        for i in np.flatnonzero(mask.to_numpy()):
            row = v.iloc[i]
            report.add(kind, int(lines[i]), column, template.format(**row.to_dict()))


def read_candle_file(path: Path) -> pd.DataFrame:
    """Read and validate a CSV or Parquet candle file; `InputFileError` names each fault."""
    raw, first_line = read_table(path)
    return validate_candles(raw, first_line, str(path))
