"""`aicash db import-trades`: CSV and JSON, validated like candles, all or nothing, idempotent."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from aicash.db.engine import make_engine

HEADER = "symbol,side,entry_time,entry_price,exit_time,exit_price,quantity,pnl,rsi_value,adx_value\n"
ROWS = [
    "EURUSD,BUY,2024-01-02 10:00,1.0950,2024-01-02 14:00,1.0990,10000,40.0,28.5,31.0",
    "eurusd,sell,2024-01-03 09:00,1.1000,2024-01-03 12:00,1.1020,10000,-20.0,71.2,22.4",
    "GBPUSD,BUY,2024-01-03 09:00,1.2700,,,5000,,45.0,",
]


def trades_in_db(env: dict[str, str]) -> pd.DataFrame:
    engine = make_engine(env["DATABASE_URL"])
    with engine.connect() as conn:
        frame = pd.read_sql("SELECT * FROM trades ORDER BY symbol, entry_time", conn)
    engine.dispose()
    return frame


def test_csv_import_keeps_features_and_is_idempotent(cli, env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "trades.csv"
    path.write_text(HEADER + "\n".join(ROWS) + "\n")
    result = cli("db", "import-trades", str(path))
    assert result.exit_code == 0, result.output
    assert "imported 3 trades" in result.stdout
    first = trades_in_db(env)
    assert list(first.symbol) == ["EURUSD", "EURUSD", "GBPUSD"] and list(first.side) == ["BUY", "SELL", "BUY"]
    features = [f if isinstance(f, dict) else json.loads(f) for f in first.entry_features]
    assert features[0] == {"rsi_value": 28.5, "adx_value": 31.0} and features[2] == {"rsi_value": 45.0}
    assert first.pnl.isna().tolist() == [False, False, True]
    assert cli("db", "import-trades", str(path)).exit_code == 0
    assert len(trades_in_db(env)) == 3


def test_json_import(cli, env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    records = [
        {"symbol": "USDJPY", "side": "SELL", "entry_time": "2024-02-01T08:00:00Z", "entry_price": 148.2,
         "exit_time": "2024-02-01T16:00:00Z", "exit_price": 147.9, "quantity": 1000, "pnl": 300.0, "rsi_value": 66},
    ]
    path = tmp_path / "trades.json"
    path.write_text(json.dumps(records))
    assert cli("db", "import-trades", str(path)).exit_code == 0
    stored = trades_in_db(env)
    assert stored.symbol.tolist() == ["USDJPY"] and stored.exit_price.tolist() == [147.9]


@pytest.mark.parametrize(
    ("row", "where", "what"),
    [
        ("EURUSD,HOLD,2024-01-05 10:00,1.09,,,1000,,,", "line 2, column 'side'", "not BUY or SELL"),
        ("EURUSD,BUY,someday,1.09,,,1000,,,", "line 2, column 'entry_time'", "cannot parse"),
        ("EURUSD,BUY,2024-01-05 10:00,cheap,,,1000,,,", "line 2, column 'entry_price'", "not a finite number"),
        ("EURUSD,BUY,2024-01-05 10:00,1.09,2024-01-04 10:00,1.1,1000,,,", "line 2, column 'exit_time'", "earlier"),
        ("EURUSD,BUY,2024-01-05 10:00,1.09,,,-5,,,", "line 2, column 'quantity'", "greater than 0"),
        ("EURUSD,BUY,2024-01-05 10:00,1.09,,,1000,,high,", "line 2, column 'rsi_value'", "not a finite number"),
    ],
)
def test_bad_trades_exit_2_and_write_nothing(cli, env, tmp_path: Path, row, where, what) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "good.csv"
    good.write_text(HEADER + ROWS[0] + "\n")
    assert cli("db", "import-trades", str(good)).exit_code == 0
    before = trades_in_db(env)
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + row + "\n" + ROWS[1] + "\n")
    result = cli("db", "import-trades", str(bad))
    assert result.exit_code == 2
    assert where in result.stderr and what in result.stderr
    pd.testing.assert_frame_equal(trades_in_db(env), before)


def test_duplicate_and_missing_column(cli, env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dup = tmp_path / "dup.csv"
    dup.write_text(HEADER + ROWS[0] + "\n" + ROWS[0] + "\n")
    result = cli("db", "import-trades", str(dup))
    assert result.exit_code == 2 and "duplicate trade" in result.stderr and "line 3" in result.stderr
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("symbol,side,entry_time,quantity\nEURUSD,BUY,2024-01-01,1\n")
    result = cli("db", "import-trades", str(nocol))
    assert result.exit_code == 2 and "column 'entry_price'" in result.stderr
    assert trades_in_db(env).empty
