"""Validation of tabular input files (candles, trades) that reports faults by line and column.

Line numbers are those a person sees in the file: for CSV the header is line 1, so the first row is line 2;
for Parquet and JSON, rows count from 1.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

MAX_SHOWN_PER_KIND = 5


@dataclass(frozen=True)
class Fault:
    """One problem in an input file."""

    kind: str
    line: int | None
    column: str
    message: str
    unit: str = "line"  # "row" for a query's result, which has no lines

    def __str__(self) -> str:
        where = f"{self.unit} {self.line}, column {self.column!r}" if self.line else f"column {self.column!r}"
        return f"{where}: {self.message}"


@dataclass
class FaultReport:
    """Faults found in one file, grouped by kind for a short, readable message."""

    source: str
    faults: list[Fault] = field(default_factory=list)
    unit: str = "line"

    def add(self, kind: str, line: int | None, column: str, message: str) -> None:
        self.faults.append(Fault(kind, line, column, message, self.unit))

    def __bool__(self) -> bool:
        return bool(self.faults)

    def render(self) -> str:
        by_kind: dict[str, list[Fault]] = defaultdict(list)
        for fault in self.faults:
            by_kind[fault.kind].append(fault)
        lines = [f"{self.source}: {len(self.faults)} problem(s); nothing was written."]
        for kind, faults in by_kind.items():
            lines.append(f"  {kind} ({len(faults)}):")
            lines.extend(f"    {f}" for f in faults[:MAX_SHOWN_PER_KIND])
            if len(faults) > MAX_SHOWN_PER_KIND:
                lines.append(f"    ... and {len(faults) - MAX_SHOWN_PER_KIND} more")
        return "\n".join(lines)


class InputFileError(ValueError):
    """An input file is unreadable or invalid; `str()` names each fault's line and column."""

    def __init__(self, report: FaultReport) -> None:
        super().__init__(report.render())
        self.report = report


def line_numbers(frame: pd.DataFrame, first_line: int) -> np.ndarray:
    """File line number of each row, given the line of the first data row."""
    return np.arange(first_line, first_line + len(frame))


def parse_timestamps(raw: pd.Series) -> pd.Series:
    """Timestamps as UTC; naive values are taken as UTC, unparseable ones become NaT."""
    if pd.api.types.is_datetime64_any_dtype(raw):
        return raw.dt.tz_localize("UTC") if raw.dt.tz is None else raw.dt.tz_convert("UTC")
    if pd.api.types.is_numeric_dtype(raw):
        return pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    text = raw.astype("string").str.strip()
    parsed = pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601")
    retry = parsed.isna() & text.notna() & (text != "")
    if retry.any():
        parsed.loc[retry] = pd.to_datetime(text[retry], utc=True, errors="coerce", format="mixed")
    return parsed


def check_timestamps(report: FaultReport, ts: pd.Series, raw: pd.Series, lines: np.ndarray, col: str) -> None:
    """Unparseable, duplicate and decreasing timestamps."""
    for i in np.flatnonzero(ts.isna().to_numpy()):
        report.add("unparseable timestamp", int(lines[i]), col, f"cannot parse {str(raw.iloc[i])[:40]!r}")
    values = ts.to_numpy(dtype="datetime64[ns]")
    idx = np.flatnonzero(~np.isnat(values))
    valid = values[idx]
    duplicate = pd.Index(valid).duplicated(keep="first")
    first_line = dict(zip(valid[~duplicate], lines[idx][~duplicate], strict=True))
    for j in np.flatnonzero(duplicate):
        stamp = pd.Timestamp(valid[j]).isoformat()
        report.add("duplicate timestamp", int(lines[idx[j]]), col, f"{stamp} already on line {first_line[valid[j]]}")
    decreasing = np.r_[False, np.diff(valid.astype(np.int64)) < 0] & ~duplicate
    for j in np.flatnonzero(decreasing):
        report.add("timestamps not increasing", int(lines[idx[j]]), col, "earlier than the row before")


def parse_numbers(
    report: FaultReport, frame: pd.DataFrame, columns: list[str], lines: np.ndarray, *, required: bool = True
) -> pd.DataFrame:
    """Numeric columns as float64; non-numeric or non-finite cells are reported."""
    out = pd.DataFrame(index=frame.index)
    for col in columns:
        raw = frame[col]
        values = pd.to_numeric(raw, errors="coerce").astype("float64")
        # numbers (a query's, Parquet's) cannot be blank text: skip the costly conversion to strings
        blank = raw.isna()
        if not pd.api.types.is_numeric_dtype(raw):
            blank = blank | (raw.astype("string").str.strip() == "")
        bad = ~np.isfinite(values.to_numpy()) & (required | ~blank.to_numpy())
        for i in np.flatnonzero(bad):
            report.add("non-numeric value", int(lines[i]), col, f"{str(raw.iloc[i])[:40]!r} is not a finite number")
        out[col] = values
    return out


MAX_LINE_BYTES = 64 * 1024  # a candle or trade row is a few hundred bytes; longer lines are not data
MAX_JSON_BYTES = 256 * 1024 * 1024  # pandas reads JSON whole: larger files must come as CSV or Parquet
_SCAN_CHUNK = 1 << 20


def check_file(report: FaultReport, path: Path) -> None:
    """Refuse what is not a readable regular file: missing, a directory, a device, a symbolic-link loop."""
    if path.is_symlink() and not path.exists():
        try:
            path.resolve(strict=True)
        except RuntimeError:
            report.add("unreadable file", None, "-", "symbolic link loop; point the path at the real file")
            return
        except OSError as exc:
            if "loop" in str(exc).lower() or getattr(exc, "errno", None) == 40:  # ELOOP
                report.add("unreadable file", None, "-", "symbolic link loop; point the path at the real file")
                return
        report.add("unreadable file", None, "-", "broken symbolic link; point the path at the real file")
        return
    if not path.is_file():
        report.add("unreadable file", None, "-", "no such file (or not a regular file); check the path")


def check_text_lines(report: FaultReport, path: Path, max_line: int = MAX_LINE_BYTES) -> None:
    """Stream the file once, in 1 MiB chunks, before pandas sees it: binary content (NUL bytes) and a line longer
    than `max_line` are refused without reading more than one chunk past them."""
    line, length = 1, 0
    with path.open("rb") as fh:
        while chunk := fh.read(_SCAN_CHUNK):
            if b"\x00" in chunk:
                report.add("not a text file", line + chunk[: chunk.index(b"\x00")].count(b"\n"), "-",
                           "binary content (NUL bytes): export the data as CSV text or Parquet")
                return
            parts = chunk.split(b"\n")
            for i, part in enumerate(parts):
                length += len(part)
                if length > max_line:
                    report.add("line too long", line, "-",
                               f"more than {max_line:,} bytes without a line break: not a candle row")
                    return
                if i < len(parts) - 1:
                    line, length = line + 1, 0


def read_table(path: Path) -> tuple[pd.DataFrame, int]:
    """A CSV, Parquet or JSON file as a frame of lower-cased columns, and the line of its first data row.

    CSV cells are read as text so that validation can point at the exact bad cell. Hostile files are refused
    before pandas reads them: symbolic-link loops, binary content or a line over `MAX_LINE_BYTES` in a CSV, a
    JSON file over `MAX_JSON_BYTES`.
    """
    report = FaultReport(str(path))
    check_file(report, path)
    if report:
        raise InputFileError(report)
    try:
        suffix = path.suffix.lower()
        if suffix in {".parquet", ".pq"}:
            frame, first = pd.read_parquet(path), 1
        elif suffix == ".json":
            if (size := path.stat().st_size) > MAX_JSON_BYTES:
                report.add("file too large", None, "-", f"{size:,} bytes of JSON (limit {MAX_JSON_BYTES:,}); "
                           "send large files as CSV or Parquet")
                raise InputFileError(report)
            frame, first = pd.read_json(path, orient="records", dtype=False), 1
        elif suffix in {".csv", ".txt", ""}:
            check_text_lines(report, path)
            if report:
                raise InputFileError(report)
            frame, first = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""]), 2
        else:
            report.add("unsupported file", None, "-", f"unknown extension {suffix!r}; use .csv, .parquet or .json")
            raise InputFileError(report)
    except InputFileError:
        raise
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        report.add("unreadable file", None, "-", f"{type(exc).__name__}: {str(exc)[:200]}")
        raise InputFileError(report) from None
    except Exception as exc:  # pyarrow raises its own types for a corrupt Parquet file
        report.add("unreadable file", None, "-", f"{type(exc).__name__}: {str(exc)[:200]}")
        raise InputFileError(report) from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    return frame.reset_index(drop=True), first


def require_columns(report: FaultReport, frame: pd.DataFrame, required: tuple[str, ...], header_line: int) -> None:
    """Missing required columns, named on the header line (CSV) or without a line (Parquet, JSON)."""
    line = 1 if header_line == 2 else None
    for col in required:
        if col not in frame.columns:
            found = ", ".join(map(str, frame.columns)) or "none"
            report.add("missing column", line, col, f"required column is missing (found: {found})")
