"""Market data sources: `ingest --from` throughput (rows/s) of 100,000 bars from an object-store prefix (moto S3 server
over HTTP, 10 CSV files) and from a SQL database (a second PostgreSQL database, one table), into SQLite and
PostgreSQL, and the bars that a second run adds (0: the ledger skips the files, the source is asked only for newer
rows)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
from sqlalchemy import Engine, create_engine, text

from aicash.market.sources import SourceRun, SourceSpec, parse_source, run_source
from aicash.market.store import Progress
from aicash.market.synth import synth_universe
from benchmarks.common import Row, postgres_server, row, scratch_database, scratch_sqlite, timed

SYMBOLS = 10
BARS = 10_000  # per symbol: 100,000 rows in all
_AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true"}


def _quiet(_description: str, _total: int | None) -> Progress:
    return lambda _n: None


def _frame() -> pd.DataFrame:
    universe = synth_universe(SYMBOLS, BARS, seed=3, timeframe_step=pd.Timedelta("1h"))
    return pd.concat([c.assign(symbol=s) for s, c in universe], ignore_index=True)


@contextmanager
def _moto() -> Iterator[str]:
    """moto's S3 server on a free loopback port, with dummy credentials in the environment."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    saved = {k: os.environ.get(k) for k in _AWS}
    os.environ.update(_AWS)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _twice(engine: Engine, spec: SourceSpec, endpoint: str | None) -> tuple[float, float, SourceRun]:
    """Seconds of the first run and of the second, and the second run (its bars added)."""
    first = timed(lambda: run_source(spec, engine, endpoint, _quiet))
    runs: list[SourceRun] = []
    second = timed(lambda: runs.append(run_source(spec, engine, endpoint, _quiet)))
    return first, second, runs[0]


def _rows(source: str, target: str, first: float, second: float, again: SourceRun) -> list[Row]:
    return [row(f"ingest --from {source}, 100k rows, {target}", SYMBOLS * BARS / first, "rows/s"),
            row(f"ingest --from {source}, second run, {target}", second, "s"),
            row(f"ingest --from {source}, second run, {target}: bars added", again.rows_added, "bars", "0",
                again.rows_added == 0)]


def run() -> list[Row]:
    import boto3

    frame = _frame()
    rows: list[Row] = []
    with _moto() as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="bench")
        for symbol, part in frame.groupby("symbol"):
            body = part.drop(columns="symbol").rename(columns={"ts": "timestamp"}).to_csv(index=False)
            client.put_object(Bucket="bench", Key=f"drops/{symbol}-1h.csv", Body=body.encode())
        spec = parse_source("s3://bench/drops/", table=None, query=None, columns=[], symbol=None, timeframe=None)
        with scratch_sqlite() as engine:
            rows += _rows("s3:// (CSV)", "SQLite", *_twice(engine, spec, endpoint))
        with postgres_server() as url, scratch_database(url) as engine:
            rows += _rows("s3:// (CSV)", "PostgreSQL", *_twice(engine, spec, endpoint))

    with postgres_server() as url, scratch_database(url) as source:
        source_url = source.url.render_as_string(hide_password=False)
        trading = create_engine(source_url)
        table = frame.rename(columns={"ts": "timestamp"}).assign(timeframe="1h")
        table.to_sql("candles", trading, index=False, chunksize=10_000)
        with trading.begin() as conn:  # as a trading database would have it
            conn.execute(text('CREATE INDEX candles_series ON candles (symbol, timeframe, "timestamp")'))
        trading.dispose()
        spec = parse_source(source_url, table="candles", query=None, columns=[], symbol=None, timeframe=None)
        with scratch_sqlite() as engine:
            rows += _rows("SQL table", "SQLite", *_twice(engine, spec, None))
        with scratch_database(url) as engine:
            rows += _rows("SQL table", "PostgreSQL", *_twice(engine, spec, None))
    return rows
