"""`aicash data ingest`: validation faults by line and column, all-or-nothing writes, idempotent upserts."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine

from aicash.db.engine import make_engine
from aicash.market.store import load_candles

HEADER = "timestamp,open,high,low,close,volume\n"
GOOD_ROWS = [
    "2024-01-01 00:00,1.10,1.20,1.00,1.15,100",
    "2024-01-01 01:00,1.15,1.25,1.10,1.20,120",
    "2024-01-01 02:00,1.20,1.30,1.15,1.25,90",
]


def write_csv(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "\n".join(rows) + "\n")
    return path


def stored(env: dict[str, str]) -> pd.DataFrame:
    engine: Engine = make_engine(env["DATABASE_URL"])
    try:
        return load_candles(engine)
    finally:
        engine.dispose()


@pytest.fixture
def seeded(cli, env, tmp_path: Path) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """The database holds the three good bars before the bad file arrives."""
    result = cli("data", "ingest", str(write_csv(tmp_path / "good.csv", GOOD_ROWS)), "--symbol", "EURUSD")
    assert result.exit_code == 0, result.output
    return stored(env)


BAD_FILES = {
    "non-numeric value": (
        [GOOD_ROWS[0], "2024-01-01 01:00,1.15,abc,1.10,1.20,120"], "line 3, column 'high'", "not a finite number",
    ),
    "high below close": (
        [GOOD_ROWS[0], "2024-01-01 01:00,1.15,1.18,1.10,1.20,120"], "line 3, column 'high'", "below close",
    ),
    "duplicate timestamp": (
        [GOOD_ROWS[0], GOOD_ROWS[1], "2024-01-01 01:00,1.15,1.25,1.10,1.20,120"],
        "line 4, column 'timestamp'", "already on line 3",
    ),
    "unparseable timestamp": (
        [GOOD_ROWS[0], "yesterday-ish,1.15,1.25,1.10,1.20,120"], "line 3, column 'timestamp'", "cannot parse",
    ),
    "timestamps not increasing": (
        [GOOD_ROWS[1], GOOD_ROWS[0]], "line 3, column 'timestamp'", "earlier than the row before",
    ),
    "negative volume": (
        [GOOD_ROWS[0], "2024-01-01 01:00,1.15,1.25,1.10,1.20,-5"], "line 3, column 'volume'", "negative"
    ),
    "low above open": ([GOOD_ROWS[0], "2024-01-01 01:00,1.15,1.25,1.16,1.20,5"], "line 3, column 'low'", "above open"),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_file_exits_2_names_line_and_column_and_writes_nothing(cli, env, seeded, tmp_path, kind) -> None:  # type: ignore[no-untyped-def]
    rows, where, what = BAD_FILES[kind]
    # the first row would be an update of a stored bar: it must not be applied either
    rows = [rows[0].replace(",100", ",999"), *rows[1:]]
    result = cli("data", "ingest", str(write_csv(tmp_path / "bad.csv", rows)), "--symbol", "EURUSD")
    assert result.exit_code == 2
    assert kind in result.stderr and where in result.stderr and what in result.stderr
    assert "nothing was written" in result.stderr
    assert "Traceback" not in result.output + result.stderr
    pd.testing.assert_frame_equal(stored(env), seeded)


def test_missing_column_is_named(cli, env, seeded, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_csv(tmp_path / "nocol.csv", ["2024-01-01 00:00,1.1,1.2,1.0,1.15"], "timestamp,open,high,low,close\n")
    result = cli("data", "ingest", str(path), "--symbol", "EURUSD")
    assert result.exit_code == 2
    assert "missing column" in result.stderr and "line 1, column 'volume'" in result.stderr
    pd.testing.assert_frame_equal(stored(env), seeded)


def test_many_faults_show_the_first_few_of_each_kind(cli, env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = [f"2024-01-01 {h:02d}:00,1.1,oops,1.0,1.15,1" for h in range(12)]
    result = cli("data", "ingest", str(write_csv(tmp_path / "many.csv", rows)), "--symbol", "EURUSD")
    assert result.exit_code == 2
    assert "non-numeric value (12)" in result.stderr and "... and 7 more" in result.stderr


@pytest.mark.parametrize("cell", ["[/x]", "[bold]1.2[/bold]", "[red"])
def test_a_cell_that_looks_like_markup_is_quoted_as_it_is(cli, env, seeded, tmp_path, cell) -> None:  # type: ignore[no-untyped-def]
    path = write_csv(tmp_path / "markup.csv", [GOOD_ROWS[0], f"2024-01-01 01:00,{cell},1.25,1.10,1.20,120"])
    result = cli("data", "ingest", str(path), "--symbol", "EURUSD")
    assert result.exit_code == 2, result.stderr
    assert "line 3, column 'open'" in result.stderr and cell in result.stderr  # shown verbatim, not interpreted
    assert "Traceback" not in result.output + result.stderr
    pd.testing.assert_frame_equal(stored(env), seeded)


def test_reingest_is_idempotent_and_overlaps_merge(cli, env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    assert cli("data", "ingest", str(first), "--symbol", "eurusd").exit_code == 0
    once = stored(env)
    again = cli("data", "ingest", str(first), "--symbol", "EURUSD")
    assert again.exit_code == 0 and "0 new, 3 updated" in again.output
    pd.testing.assert_frame_equal(stored(env), once)

    overlap = write_csv(
        tmp_path / "b.csv", ["2024-01-01 02:00,1.20,1.35,1.15,1.30,95", "2024-01-01 03:00,1.30,1.40,1.25,1.35,80"]
    )
    result = cli("data", "ingest", str(overlap), "--symbol", "EURUSD")
    assert result.exit_code == 0 and "1 new, 1 updated" in result.output
    merged = stored(env)
    assert len(merged) == 4
    assert merged.loc[merged.ts == pd.Timestamp("2024-01-01 02:00", tz="UTC"), "close"].item() == 1.30


def test_parquet_with_zoned_timestamps_is_stored_as_utc(cli, env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    frame = pd.DataFrame(
        {
            "Timestamp": pd.date_range("2024-03-01 09:00", periods=3, freq="h", tz="Europe/Berlin"),
            "OPEN": [1.0, 1.1, 1.2], "High": [1.2, 1.3, 1.4], "low": [0.9, 1.0, 1.1],
            "Close": [1.1, 1.2, 1.3], "Volume": [1, 2, 3],
        }
    )
    frame.to_parquet(tmp_path / "zoned.parquet")
    assert cli("data", "ingest", str(tmp_path / "zoned.parquet"), "--symbol", "GBPUSD").exit_code == 0
    got = stored(env)
    assert list(got.ts) == list(pd.date_range("2024-03-01 08:00", periods=3, freq="h", tz="UTC"))


def test_csv_timestamps_with_offsets_are_converted_to_utc(cli, env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = ["2024-01-01T02:00:00+02:00,1,1.2,0.9,1.1,1", "2024-01-01T01:00:00Z,1,1.2,0.9,1.1,1"]
    assert cli("data", "ingest", str(write_csv(tmp_path / "tz.csv", rows)), "--symbol", "X1").exit_code == 0
    expected = [pd.Timestamp("2024-01-01 00:00", tz="UTC"), pd.Timestamp("2024-01-01 01:00", tz="UTC")]
    assert list(stored(env).ts) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--symbol", "EUR/USD"], "--symbol"),
        (["--symbol", "EURUSD", "--timeframe", "7h"], "--timeframe"),
        ([], "--symbol is required"),
    ],
)
def test_bad_options_exit_2(cli, env, tmp_path, args, message) -> None:  # type: ignore[no-untyped-def]
    path = write_csv(tmp_path / "ok.csv", GOOD_ROWS)
    result = cli("data", "ingest", str(path), *args)
    assert result.exit_code == 2 and message in result.stderr


@pytest.mark.parametrize("content", [b"\x00\xff\x13garbage\x00" * 50, b""])
def test_unreadable_files_exit_2(cli, env, tmp_path, content) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "junk.csv"
    path.write_bytes(content)
    result = cli("data", "ingest", str(path), "--symbol", "EURUSD")
    assert result.exit_code == 2 and str(path) in result.stderr


def test_missing_file_exits_2(cli, env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = cli("data", "ingest", str(tmp_path / "nope.csv"), "--symbol", "EURUSD")
    assert result.exit_code == 2 and "no such file" in result.stderr


def test_sample_and_list(cli, env) -> None:  # type: ignore[no-untyped-def]
    result = cli("data", "ingest", "--sample", "eurusd-1h")
    assert result.exit_code == 0 and "5000 bars" in result.output
    bars = stored(env)
    assert len(bars) == 5000 and bars.ts.min().year == 2017 and bars.ts.max().year == 2018
    listing = cli("data", "list")
    assert "EURUSD" in listing.output and "5,000" in listing.output
    assert cli("data", "ingest", "--sample", "nope").exit_code == 2


def test_synth_is_deterministic_and_valid(cli, env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "synth"
    result = cli("data", "synth", "--symbols", "2", "--bars", "500", "--seed", "7", "--out", str(out))
    assert result.exit_code == 0, result.output
    bars = stored(env)
    assert bars.groupby("symbol").size().to_dict() == {"SYN001": 500, "SYN002": 500}
    assert (bars.low <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars.high >= bars[["open", "close"]].max(axis=1)).all() and (bars.volume >= 0).all()
    # the written files are valid input for ingest, and re-ingesting them changes nothing
    before = stored(env)
    assert cli("data", "ingest", str(out / "SYN001-1h.parquet"), "--symbol", "SYN001").exit_code == 0
    pd.testing.assert_frame_equal(stored(env), before)
    # same seed, same candles
    assert cli("data", "synth", "--symbols", "2", "--bars", "500", "--seed", "7").exit_code == 0
    pd.testing.assert_frame_equal(stored(env), before)
