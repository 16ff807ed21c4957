"""Import of an existing trade history (CSV, Parquet or JSON), validated like candles, in one transaction.

Required columns: symbol, side (BUY/SELL), entry_time, entry_price, quantity. Optional: exit_time,
exit_price, pnl. Any column named like an indicator (`rsi_value`, ...) is kept as the trade's entry features.
Re-importing the same trades updates them (natural key: symbol, side, entry_time).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from aicash.db.models import Trade
from aicash.indicators import INDICATOR_COLUMNS
from aicash.market.candles import SYMBOL_PATTERN
from aicash.market.validation import (
    FaultReport,
    InputFileError,
    line_numbers,
    parse_numbers,
    parse_timestamps,
    read_table,
    require_columns,
)

REQUIRED = ("symbol", "side", "entry_time", "entry_price", "quantity")
SIDES = ("BUY", "SELL")


def _check_times(report: FaultReport, raw: pd.DataFrame, lines: np.ndarray) -> dict[str, pd.Series]:
    times = {}
    for col in ("entry_time", "exit_time"):
        if col not in raw:
            continue
        parsed = parse_timestamps(raw[col])
        blank = raw[col].isna() | (raw[col].astype("string").str.strip() == "")
        bad = parsed.isna() & (~blank if col == "exit_time" else True)
        for i in np.flatnonzero(bad.to_numpy()):
            report.add("unparseable timestamp", int(lines[i]), col, f"cannot parse {str(raw[col].iloc[i])[:40]!r}")
        times[col] = parsed
    if "exit_time" in times:
        early = (times["exit_time"] < times["entry_time"]).to_numpy()
        for i in np.flatnonzero(early):
            report.add("exit before entry", int(lines[i]), "exit_time", "exit_time is earlier than entry_time")
    return times


def _check_labels(report: FaultReport, raw: pd.DataFrame, lines: np.ndarray) -> tuple[pd.Series, pd.Series]:
    symbols = raw["symbol"].astype("string").str.strip().str.upper()
    sides = raw["side"].astype("string").str.strip().str.upper()
    for i in np.flatnonzero(~symbols.fillna("").str.fullmatch(SYMBOL_PATTERN.pattern).to_numpy(dtype=bool)):
        report.add("bad symbol", int(lines[i]), "symbol", f"{str(raw['symbol'].iloc[i])[:40]!r} is not a symbol")
    for i in np.flatnonzero(~sides.isin(SIDES).to_numpy(dtype=bool)):
        report.add("bad side", int(lines[i]), "side", f"{str(raw['side'].iloc[i])[:20]!r} is not BUY or SELL")
    return symbols, sides


def read_trades(path: Path) -> pd.DataFrame:
    """Validated trades, one row per trade; `InputFileError` names each fault's line and column."""
    raw, first_line = read_table(path)
    report = FaultReport(str(path))
    require_columns(report, raw, REQUIRED, first_line)
    if report:
        raise InputFileError(report)
    lines = line_numbers(raw, first_line)
    symbols, sides = _check_labels(report, raw, lines)
    times = _check_times(report, raw, lines)
    numbers = parse_numbers(report, raw, ["entry_price", "quantity"], lines)
    optional = [c for c in ("exit_price", "pnl", *INDICATOR_COLUMNS) if c in raw]
    extra = parse_numbers(report, raw, optional, lines, required=False)
    for col, rule in (("entry_price", numbers["entry_price"] <= 0), ("quantity", numbers["quantity"] <= 0)):
        for i in np.flatnonzero(rule.to_numpy()):
            report.add("not positive", int(lines[i]), col, f"{col} must be greater than 0")
    keys = pd.DataFrame({"s": symbols, "d": sides, "t": times["entry_time"]})
    for i in np.flatnonzero(keys.duplicated().to_numpy()):
        report.add("duplicate trade", int(lines[i]), "entry_time", "same symbol, side and entry_time as an earlier row")
    if report:
        raise InputFileError(report)
    features = [c for c in INDICATOR_COLUMNS if c in extra]
    out = pd.DataFrame({"symbol": symbols, "side": sides, "entry_time": times["entry_time"], **numbers})
    out["exit_time"] = times.get("exit_time")
    for col in ("exit_price", "pnl"):
        out[col] = extra.get(col, np.nan)
    out["entry_features"] = [
        {k: float(v) for k, v in row.items() if pd.notna(v)} for row in extra[features].to_dict("records")
    ] if features else [{} for _ in range(len(out))]
    return out


def _none_if_missing(value: object) -> object:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT else value


def import_trades(engine: Engine, path: Path, source: str = "import") -> int:
    """Validate the whole file, then upsert every trade in one transaction; returns the number of trades."""
    trades = read_trades(path)
    rows = [
        {k: _none_if_missing(v) for k, v in rec.items()} | {"source": source}
        for rec in trades.to_dict("records")
    ]
    for row in rows:
        for col in ("entry_time", "exit_time"):
            if row[col] is not None:
                row[col] = pd.Timestamp(row[col]).to_pydatetime()
        row["entry_features"] = json.loads(json.dumps(row["entry_features"]))
    if not rows:
        return 0
    table = Trade.__table__
    with engine.begin() as conn:
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(table)
        updates = {c: stmt.excluded[c] for c in ("exit_time", "entry_price", "exit_price", "quantity", "pnl",
                                                 "entry_features", "source")}
        conn.execute(stmt.on_conflict_do_update(index_elements=["symbol", "side", "entry_time"], set_=updates), rows)
    return len(rows)
