"""`aicash data ingest --from s3://bucket/prefix/` against moto's S3 server over HTTP: incremental, idempotent, the
ETag ledger, validation like files, and clear exits for bad sources; on SQLite and PostgreSQL targets."""

from __future__ import annotations

import io

import boto3
import pandas as pd
import pytest
from sqlalchemy import select

from aicash.db.engine import make_engine
from aicash.db.models import IngestedObject
from aicash.market.s3_source import series_from_name
from tests.support.market import stored
from tests.support.net import free_port

HEADER = "timestamp,open,high,low,close,volume\n"


def bars(start: str, n: int, price: float = 1.0) -> str:
    """`n` valid hourly CSV rows from `start`."""
    stamps = pd.date_range(start, periods=n, freq="h")
    return "".join(f"{ts:%Y-%m-%d %H:%M},{price},{price + 0.2},{price - 0.1},{price + 0.1},100\n" for ts in stamps)


@pytest.fixture
def s3(env: dict[str, str], moto_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The bucket, a client on moto's server, and S3_ENDPOINT_URL pointing there."""
    monkeypatch.setenv("S3_ENDPOINT_URL", moto_endpoint)
    return s3_bucket, boto3.client("s3", endpoint_url=moto_endpoint)


def put(s3, key: str, body: str | bytes) -> None:  # type: ignore[no-untyped-def]
    bucket, client = s3
    client.put_object(Bucket=bucket, Key=key, Body=body.encode() if isinstance(body, str) else body)


def ledger_rows(env: dict[str, str]) -> list[tuple[str, str]]:
    engine = make_engine(env["DATABASE_URL"])
    t = IngestedObject.__table__
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(t.c.key, t.c.rows).order_by(t.c.key, t.c.ingested_at))]
    finally:
        engine.dispose()


def parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf)
    return buf.getvalue()


def test_a_prefix_is_read_incrementally_and_a_second_run_adds_nothing(cli, env, s3) -> None:  # type: ignore[no-untyped-def]
    bucket, _ = s3
    put(s3, "drops/EURUSD-1h.csv", HEADER + bars("2024-01-01 00:00", 3))
    zoned = pd.DataFrame({
        "Timestamp": pd.date_range("2024-03-01 09:00", periods=3, freq="h", tz="Europe/Berlin"),
        "open": [1.0] * 3, "high": [1.2] * 3, "low": [0.9] * 3, "close": [1.1] * 3, "volume": [1] * 3,
    })
    put(s3, "drops/GBPUSD-1h.parquet", parquet(zoned))
    put(s3, "drops/notes.md", "not candles")
    put(s3, "elsewhere/USDJPY-1h.csv", HEADER + bars("2024-01-01 00:00", 3))
    uri = f"s3://{bucket}/drops/"

    first = cli("data", "ingest", "--from", uri)
    assert first.exit_code == 0, first.stderr
    assert "2 file(s) read, 0 already ingested" in first.output and "6 bars added" in first.output
    got = stored(env)
    assert got.groupby("symbol").size().to_dict() == {"EURUSD": 3, "GBPUSD": 3}
    assert got[got.symbol == "GBPUSD"].ts.min() == pd.Timestamp("2024-03-01 08:00", tz="UTC")

    again = cli("data", "ingest", "--from", uri)
    assert again.exit_code == 0 and "0 file(s) read, 2 already ingested" in again.output
    assert "0 bars added" in again.output
    pd.testing.assert_frame_equal(stored(env), got)

    put(s3, "drops/EURUSD-1h.csv", HEADER + bars("2024-01-01 00:00", 3))  # re-dropped, identical: same ETag
    assert "0 file(s) read, 2 already ingested" in cli("data", "ingest", "--from", uri).output

    put(s3, "drops/EURUSD-1h.csv", HEADER + bars("2024-01-01 00:00", 5))  # changed: two more bars
    changed = cli("data", "ingest", "--from", uri)
    assert "1 file(s) read" in changed.output and "2 bars added" in changed.output
    # a late file that repeats a stored bar with other prices: only the bar after the last stored one is added
    put(s3, "drops/EURUSD-1h-late.csv", HEADER + bars("2024-01-01 04:00", 2, price=2.0))
    late = cli("data", "ingest", "--from", uri)
    assert "1 bars added" in late.output
    eur = stored(env).query("symbol == 'EURUSD'")
    assert len(eur) == 6 and eur.close.tolist() == [1.1] * 5 + [2.1]
    assert [k for k, _ in ledger_rows(env)] == [
        "drops/EURUSD-1h-late.csv", "drops/EURUSD-1h.csv", "drops/EURUSD-1h.csv", "drops/GBPUSD-1h.parquet",
    ]


def test_series_from_columns_and_mapped_names(cli, env, s3) -> None:  # type: ignore[no-untyped-def]
    bucket, _ = s3
    rows = "time,sym,open,high,low,last_price,volume\n" + "".join(
        f"2024-01-01 {h:02d}:00,{sym},1.0,1.2,0.9,1.1,5\n" for h in range(0, 12, 4) for sym in ("eurusd", "BTC-USD")
    )
    put(s3, "feed/candles-2024.csv", rows)
    result = cli("data", "ingest", "--from", f"s3://{bucket}/feed/", "--timeframe", "4h",
                 "--column", "ts=time", "--column", "symbol=sym", "--column", "close=last_price")
    assert result.exit_code == 0, result.stderr
    got = stored(env)
    assert got.groupby(["symbol", "timeframe"]).size().to_dict() == {("BTC-USD", "4h"): 3, ("EURUSD", "4h"): 3}


def test_a_bad_file_stops_the_whole_run(cli, env, s3) -> None:  # type: ignore[no-untyped-def]
    bucket, _ = s3
    put(s3, "drops/EURUSD-1h.csv", HEADER + bars("2024-01-01 00:00", 3))
    bad_high = "2024-01-01 01:00,1.1,1.0,1.0,1.15,1\n"  # line 3: high below open and close
    put(s3, "drops/GBPUSD-1h.csv", HEADER + "2024-01-01 00:00,1.1,1.2,1.0,1.15,1\n" + bad_high)
    uri = f"s3://{bucket}/drops/"
    result = cli("data", "ingest", "--from", uri, "--column", "close=last")
    assert result.exit_code == 2
    assert f"s3://{bucket}/drops/EURUSD-1h.csv" in result.stderr and "column 'last'" in result.stderr
    result = cli("data", "ingest", "--from", uri)
    assert result.exit_code == 2
    assert f"s3://{bucket}/drops/GBPUSD-1h.csv" in result.stderr and "line 3, column 'high'" in result.stderr
    assert "nothing was written" in result.stderr and "Traceback" not in result.output + result.stderr
    assert stored(env).empty and ledger_rows(env) == []

    put(s3, "drops/GBPUSD-1h.csv", HEADER + bars("2024-01-01 00:00", 2))  # fixed by the trading application
    fixed = cli("data", "ingest", "--from", uri)
    assert fixed.exit_code == 0 and "5 bars added" in fixed.output


def test_a_file_that_names_no_series_is_refused(cli, env, s3) -> None:  # type: ignore[no-untyped-def]
    bucket, _ = s3
    put(s3, "drops/prices.csv", HEADER + bars("2024-01-01 00:00", 2))
    result = cli("data", "ingest", "--from", f"s3://{bucket}/drops/")
    assert result.exit_code == 2 and "no symbol" in result.stderr and "EURUSD-1h.csv" in result.stderr
    ok = cli("data", "ingest", "--from", f"s3://{bucket}/drops/", "--symbol", "eurusd", "--timeframe", "1h")
    assert ok.exit_code == 0 and "EURUSD 1h: 2 new bars" in ok.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "s3://no-such-bucket-here/drops/"], "bucket 'no-such-bucket-here' does not exist"),
        (["--from", "just-a-name"], "is not a source URI"),
        (["--from", "ftp://host/path"], "unknown scheme 'ftp'"),
        (["--from", "s3:///drops/"], "names no bucket"),
        (["--from", "s3://b/drops/", "--table", "candles"], "--table and --query go with a database URL"),
        (["--from", "s3://b/drops/", "--column", "price"], "--column 'price'"),
        (["--from", "s3://b/drops/", "--symbol", "X", "--column", "symbol=sym"], "keep one"),
        (["--table", "candles", "--sample", "eurusd-1h"], "go with --from URI"),
    ],
)
def test_bad_sources_exit_2_and_name_the_fix(cli, env, s3, args, message) -> None:  # type: ignore[no-untyped-def]
    result = cli("data", "ingest", *args)
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.output + result.stderr
    assert stored(env).empty


def test_an_unreachable_endpoint_exits_2(cli, env, aws_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    endpoint = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("S3_ENDPOINT_URL", endpoint)
    result = cli("data", "ingest", "--from", "s3://bucket/drops/")
    assert result.exit_code == 2 and f"cannot reach the S3 endpoint {endpoint}" in result.stderr
    assert "S3_ENDPOINT_URL" in result.stderr


@pytest.mark.parametrize(
    ("key", "series"),
    [("drops/EURUSD-1h.csv", ("EURUSD", "1h")), ("BTC-USD-4h-2024-06.parquet", ("BTC-USD", "4h")),
     ("x/eurusd-15m.csv", ("EURUSD", "15m")), ("prices.csv", (None, None)), ("1h.csv", (None, None))],
)
def test_series_from_name(key: str, series: tuple[str | None, str | None]) -> None:
    assert series_from_name(key) == series
