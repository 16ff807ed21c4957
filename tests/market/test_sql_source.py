"""`aicash data ingest --from postgresql://... --table/--query`: the trading application's own database is a second
embedded PostgreSQL database; the aicash database is SQLite or PostgreSQL (`db_url`)."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine, text

from tests.support.market import stored
from tests.support.net import free_port

MAPPING = ["--column", "timestamp=time", "--column", "symbol=sym", "--column", "close=last_price"]


@pytest.fixture
def trading(trading_db: str) -> Iterator[Engine]:
    """The trading application's table of candles, its own column names, a zoned timestamp."""
    engine = create_engine(trading_db)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE candles (time timestamptz NOT NULL, sym text NOT NULL, open numeric(12, 5), "
                          "high double precision, low double precision, last_price double precision, volume bigint)"))
    yield engine
    engine.dispose()


def add_bars(engine: Engine, sym: str, start: str, n: int, price: float = 1.0, **overrides: object) -> None:
    rows = [{"time": ts, "sym": sym, "open": price, "high": price + 0.2, "low": price - 0.1, "last_price": price + 0.1,
             "volume": 100} | overrides for ts in pd.date_range(start, periods=n, freq="h", tz="UTC")]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO candles VALUES (:time, :sym, :open, :high, :low, :last_price, :volume)"), rows)


def test_a_table_is_read_incrementally_and_a_second_run_adds_nothing(cli, env, trading, trading_db) -> None:  # type: ignore[no-untyped-def]
    add_bars(trading, "EURUSD", "2024-01-01 00:00", 5)
    add_bars(trading, "gbpusd", "2024-01-01 00:00", 5)
    args = ["data", "ingest", "--from", trading_db, "--table", "candles", *MAPPING, "--timeframe", "1h"]

    first = cli(*args)
    assert first.exit_code == 0, first.stderr
    assert "10 rows read, 10 bars added" in first.output and "GBPUSD 1h: 5 new bars" in first.output
    once = stored(env)
    assert once.groupby("symbol").size().to_dict() == {"EURUSD": 5, "GBPUSD": 5}
    assert once.ts.max() == pd.Timestamp("2024-01-01 04:00", tz="UTC")

    again = cli(*args)
    assert again.exit_code == 0 and "0 rows read, 0 bars added" in again.output
    pd.testing.assert_frame_equal(stored(env), once)

    # An old, invalid row (high below low) before the last stored bar: the source is never asked for it.
    add_bars(trading, "EURUSD", "2023-12-31 00:00", 1, high=0.5)
    add_bars(trading, "EURUSD", "2024-01-01 05:00", 2)
    add_bars(trading, "USDJPY", "2024-01-01 00:00", 3, price=150.0)
    third = cli(*args)
    assert third.exit_code == 0, third.stderr
    assert "5 rows read, 5 bars added" in third.output
    assert stored(env).groupby("symbol").size().to_dict() == {"EURUSD": 7, "GBPUSD": 5, "USDJPY": 3}


def test_a_query_with_the_series_given_as_options(cli, env, trading, trading_db) -> None:  # type: ignore[no-untyped-def]
    add_bars(trading, "EURUSD", "2024-01-01 00:00", 4)
    add_bars(trading, "GBPUSD", "2024-01-01 00:00", 4)
    query = ("SELECT time::timestamp AS ts, open, high, low, last_price AS close, volume FROM candles "
             "WHERE sym = 'EURUSD';")
    args = ["data", "ingest", "--from", trading_db, "--query", query, "--column", "ts=ts", "--symbol", "EURUSD",
            "--timeframe", "15m"]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    assert "EURUSD 15m: 4 new bars, 2024-01-01 00:00 .. 2024-01-01 03:00 UTC" in result.output
    assert "0 bars added" in cli(*args).output
    assert len(stored(env)) == 4


def test_bad_rows_are_named_and_nothing_is_written(cli, env, trading, trading_db) -> None:  # type: ignore[no-untyped-def]
    add_bars(trading, "EURUSD", "2024-01-01 00:00", 3)
    args = ["data", "ingest", "--from", trading_db, "--table", "candles", *MAPPING, "--timeframe", "1h"]
    assert cli(*args).exit_code == 0
    seeded = stored(env)
    add_bars(trading, "EURUSD", "2024-01-01 03:00", 1)
    add_bars(trading, "EURUSD", "2024-01-01 04:00", 1, last_price=None)
    add_bars(trading, "GBP/USD", "2024-01-01 00:00", 1)
    result = cli(*args)
    assert result.exit_code == 2
    assert "row 2, column 'last_price'" in result.stderr and "not a finite number" in result.stderr
    assert "column 'sym'" in result.stderr and "'GBP/USD' is not a valid symbol" in result.stderr
    assert "nothing was written" in result.stderr and "Traceback" not in result.output + result.stderr
    pd.testing.assert_frame_equal(stored(env), seeded)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--table", "candles", "--column", "timestamp=time", "--column", "symbol=sym", "--column", "close=nope"],
         "--column close=nope: the source has no column 'nope'"),
        (["--table", "candles", "--column", "timestamp=time", "--column", "symbol=sym"],
         "--column close=NAME: the source has no column 'close'"),
        (["--table", "candles", *MAPPING], "--column timeframe=NAME: the source has no column 'timeframe'"),
        (["--table", "nope", *MAPPING], "--table 'nope': no such table"),
        (["--query", "SELEC nonsense", *MAPPING], "--query: the source refused it"),
        ([*MAPPING], "exactly one of --table NAME or --query"),
        (["--table", "candles", "--query", "SELECT 1", *MAPPING], "exactly one of --table NAME or --query"),
    ],
)
def test_bad_options_exit_2_and_name_the_fix(cli, env, trading, trading_db, args, message) -> None:  # type: ignore[no-untyped-def]
    add_bars(trading, "EURUSD", "2024-01-01 00:00", 2)
    result = cli("data", "ingest", "--from", trading_db, *args)
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert stored(env).empty


def test_an_unreachable_source_exits_2_without_its_password(cli, env) -> None:  # type: ignore[no-untyped-def]
    url = f"postgresql://trader:s3cret@127.0.0.1:{free_port()}/trading"
    result = cli("data", "ingest", "--from", url, "--table", "candles", "--symbol", "EURUSD")
    assert result.exit_code == 2 and "the source database is unreachable" in result.stderr
    assert "s3cret" not in result.stderr and "trader:***@127.0.0.1" in result.stderr


def test_series_from_symbol_and_timeframe_columns(cli, env, trading, trading_db) -> None:  # type: ignore[no-untyped-def]
    with trading.begin() as conn:
        conn.execute(text("ALTER TABLE candles ADD COLUMN tf text NOT NULL DEFAULT '1h'"))
    add_bars(trading, "EURUSD", "2024-01-01 00:00", 3)
    with trading.begin() as conn:
        conn.execute(text("INSERT INTO candles SELECT time, sym, open, high, low, last_price, volume, '4h' "
                          "FROM candles"))
    args = ["data", "ingest", "--from", trading_db, "--table", "candles", *MAPPING, "--column", "timeframe=tf"]
    first = cli(*args)
    assert first.exit_code == 0, first.stderr
    assert "EURUSD 1h: 3 new bars" in first.output and "EURUSD 4h: 3 new bars" in first.output
    add_bars(trading, "EURUSD", "2024-01-01 03:00", 1)  # a new 1h bar, and a series never seen before
    add_bars(trading, "eurusd", "2024-01-01 00:00", 2)
    with trading.begin() as conn:
        conn.execute(text("UPDATE candles SET tf = '1d' WHERE sym = 'eurusd'"))
    second = cli(*args)
    assert second.exit_code == 0, second.stderr
    assert "3 rows read, 3 bars added" in second.output and "EURUSD 1d: 2 new bars" in second.output
    assert "0 rows read, 0 bars added" in cli(*args).output
    assert stored(env).groupby("timeframe").size().to_dict() == {"1d": 2, "1h": 4, "4h": 3}
