"""Object-store source: the CSV or Parquet candle files that the trading application drops under `s3://bucket/prefix/`.

Files already in the ledger with the same ETag are skipped; a new or changed file is read whole and validated like
`aicash data ingest FILE`. A file's series comes from `--symbol`/`--timeframe`, else from its `symbol`/`timeframe`
columns, else from its name `SYMBOL-TIMEFRAME[-anything].csv` (as `aicash data synth --out` writes them).
"""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
from sqlalchemy import Engine

from aicash.market import ledger
from aicash.market.candles import TIMEFRAMES, SeriesCandles, symbol_or_none
from aicash.market.sources import (
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
from aicash.market.store import Progress
from aicash.market.validation import FaultReport, InputFileError, read_table

READABLE_SUFFIXES = frozenset({".csv", ".txt", ".parquet", ".pq", ".json"})  # what `read_table` reads
_CHUNK = 1 << 20


def s3_client(endpoint_url: str | None) -> Any:
    """A boto3 S3 client as the artifact store builds it (S3_ENDPOINT_URL, boto3's credential chain), with few
    retries so that an unreachable endpoint fails in seconds."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=10, read_timeout=60)
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)


def series_from_name(key: str) -> tuple[str | None, str | None]:
    """(symbol, timeframe) from a name like `EURUSD-1h.csv`, `BTC-USD-1h-2024-06.parquet`; None where absent."""
    parts = PurePosixPath(key).stem.split("-")
    for i, part in enumerate(parts[1:], start=1):
        if part in TIMEFRAMES:
            return symbol_or_none("-".join(parts[:i])), part
    return None, None


def _explain(exc: Exception, spec: SourceSpec, bucket: str, endpoint: str | None) -> SourceError:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    where = endpoint or "AWS S3"
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in {"NoSuchBucket", "404"}:
            return SourceError(f"--from {spec.shown()}: bucket {bucket!r} does not exist at {where}: check the "
                               "bucket name, or S3_ENDPOINT_URL if the files are on another object store")
        return SourceError(f"--from {spec.shown()}: S3 refused the listing ({code or exc}): check the credentials "
                           "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) and their rights on the bucket")
    if isinstance(exc, NoCredentialsError):
        return SourceError(f"--from {spec.shown()}: no AWS credentials: set AWS_ACCESS_KEY_ID and "
                           "AWS_SECRET_ACCESS_KEY (or a profile)")
    if isinstance(exc, EndpointConnectionError):
        return SourceError(f"--from {spec.shown()}: cannot reach the S3 endpoint {where}: check S3_ENDPOINT_URL and "
                           "that the object store is running")
    return SourceError(f"--from {spec.shown()}: S3 failed: {exc}")


def list_objects(client: Any, spec: SourceSpec, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """Readable candle files under the prefix, oldest first (a later file's bar wins over an earlier one's)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        objects = [obj for page in pages for obj in page.get("Contents", [])]
    except (BotoCoreError, ClientError) as exc:
        raise _explain(exc, spec, bucket, client.meta.endpoint_url) from None
    readable = [o for o in objects if PurePosixPath(o["Key"]).suffix.lower() in READABLE_SUFFIXES]
    return sorted(readable, key=lambda o: (o["LastModified"], o["Key"]))


def download(client: Any, bucket: str, key: str, dest: Path, advance: Progress) -> str:
    """Stream one object to `dest`; its ETag as served (the content that was read, even if it changed since the
    listing)."""
    response = client.get_object(Bucket=bucket, Key=key)
    with dest.open("wb") as fh:
        for chunk in response["Body"].iter_chunks(_CHUNK):
            fh.write(chunk)
            advance(len(chunk))
    return str(response["ETag"])


def read_object(path: Path, uri: str, key: str, spec: SourceSpec) -> tuple[list[SeriesCandles], int]:
    """Validated series of one downloaded file, and its row count; `InputFileError` names the object."""
    try:
        raw, first_line = read_table(path)
    except InputFileError as exc:
        exc.report.source = uri
        raise InputFileError(exc.report) from None
    report = FaultReport(uri)
    named_symbol, named_timeframe = series_from_name(key)
    keys: dict[str, str | None] = {}
    for name, given, named in (("symbol", spec.symbol, named_symbol), ("timeframe", spec.timeframe, named_timeframe)):
        in_file = spec.columns.source(name).lower() in raw.columns
        keys[name] = given or (None if in_file else named)
        if keys[name] is None and not in_file:
            report.add(f"no {name}", None, name, f"name the file SYMBOL-TIMEFRAME.csv (e.g. EURUSD-1h.csv), add a "
                       f"{name} column, or pass --{name}")
    if report:
        raise InputFileError(report)
    return validate_mapped(raw, first_line, report, spec, keys["symbol"], keys["timeframe"]), len(raw)


def ingest_prefix(
    spec: SourceSpec, engine: Engine, endpoint_url: str | None, last: dict[SeriesKey, pd.Timestamp], track: Tracker
) -> SourceRun:
    """Read the new and changed files under the prefix and store their new bars and their ledger entries in one
    transaction; any bad file stops the run before anything is written."""
    from botocore.exceptions import BotoCoreError, ClientError

    parts = urlsplit(spec.uri)
    bucket, prefix = parts.netloc, parts.path.lstrip("/")
    client = s3_client(endpoint_url)
    listing = list_objects(client, spec, bucket, prefix)
    seen = ledger.processed(engine, bucket, prefix)
    todo = [o for o in listing if (o["Key"], o["ETag"]) not in seen]
    run = SourceRun(spec.shown(), objects_read=len(todo), objects_skipped=len(listing) - len(todo))
    series: list[SeriesCandles] = []
    versions: list[ledger.ObjectVersion] = []
    reports: list[FaultReport] = []
    advance = track(f"read {len(todo)} file(s)", sum(int(o["Size"]) for o in todo))
    with tempfile.TemporaryDirectory(prefix="aicash-s3-") as folder:
        for i, obj in enumerate(todo):
            key, uri = obj["Key"], f"s3://{bucket}/{obj['Key']}"
            path = Path(folder) / f"{i}{PurePosixPath(key).suffix.lower()}"
            try:
                etag = download(client, bucket, key, path, advance)
            except (BotoCoreError, ClientError) as exc:
                raise _explain(exc, spec, bucket, endpoint_url) from None
            try:
                found, rows = read_object(path, uri, key, spec)
            except InputFileError as exc:
                reports.append(exc.report)
                continue
            finally:
                path.unlink(missing_ok=True)
            series += found
            run.rows_read += rows
            versions.append(ledger.ObjectVersion(bucket, key, etag, int(obj["Size"]), rows))
    if reports:
        raise SourceFaultsError(reports)
    run.added = only_new(series, last)
    store_new(engine, run.added, track, lambda conn: ledger.record(conn, versions))
    return run
