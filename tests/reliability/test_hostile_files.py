"""Hostile input files for `aicash data ingest` and `aicash db import-trades`: exit code 2 with a message, no
traceback, nothing written, and never a 1 GB line loaded into memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import func, select

from aicash.db.models import MarketCandle, Trade

GIB = 1 << 30


def one_gib_line(path: Path) -> Path:
    """A 1 GiB CSV whose second line never ends: 2 MiB of digits on disk, the rest a sparse hole."""
    with path.open("wb") as fh:
        fh.write(b"timestamp,open,high,low,close,volume\n")
        fh.write(b"9" * (2 << 20))
        fh.truncate(GIB)
    return path


def hostile(tmp_path: Path, kind: str) -> Path:
    if kind == "1 GiB line":
        return one_gib_line(tmp_path / "long.csv")
    if kind == "1 GiB of zeros":
        path = tmp_path / "zeros.csv"
        with path.open("wb") as fh:
            fh.truncate(GIB)
        return path
    if kind == "binary garbage":
        path = tmp_path / "garbage.csv"
        path.write_bytes(bytes(range(256)) * 64)
        return path
    if kind == "garbage parquet":
        path = tmp_path / "garbage.parquet"
        path.write_bytes(b"PAR1" + os.urandom(4096))
        return path
    if kind == "parquet with the wrong schema":
        path = tmp_path / "wrong.parquet"
        pd.DataFrame({"when": ["2024-01-01"], "price": [1.1], "qty": [3]}).to_parquet(path)
        return path
    if kind == "parquet with wrong types":
        path = tmp_path / "types.parquet"
        pd.DataFrame({"timestamp": [1, 2], "open": ["a", "b"], "high": [None, None], "low": [True, False],
                      "close": [b"x", b"y"], "volume": [[1], [2]]}).to_parquet(path)
        return path
    if kind == "symlink loop":
        path = tmp_path / "loop.csv"
        os.symlink(tmp_path / "loop2.csv", path)
        os.symlink(path, tmp_path / "loop2.csv")
        return path
    if kind == "directory":
        (tmp_path / "dir.csv").mkdir()
        return tmp_path / "dir.csv"
    if kind == "empty file":
        path = tmp_path / "empty.csv"
        path.write_bytes(b"")
        return path
    if kind == "JSON that is not records":
        path = tmp_path / "x.json"
        path.write_text('{"a": {"b": [1, 2, {"c": null}]}}')
        return path
    raise AssertionError(kind)


KINDS = {
    "1 GiB line": "line too long", "1 GiB of zeros": "binary content", "binary garbage": "binary content",
    "garbage parquet": "unreadable file", "parquet with the wrong schema": "missing column",
    "parquet with wrong types": "column", "symlink loop": "symbolic link loop", "directory": "not a regular file",
    "empty file": "unreadable file", "JSON that is not records": "column",
}


def count(engine, model) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


@pytest.mark.parametrize("kind", list(KINDS))
def test_hostile_candle_files_exit_2_and_write_nothing(cli, engine, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    path = hostile(tmp_path, kind)
    start = time.monotonic()
    result = cli("data", "ingest", str(path), "--symbol", "EURUSD")
    assert result.exit_code == 2, result.output
    assert KINDS[kind] in result.stderr and "Traceback" not in result.stderr + result.stdout, result.stderr
    assert time.monotonic() - start < 10
    assert count(engine, MarketCandle) == 0


@pytest.mark.parametrize("kind", ["1 GiB line", "binary garbage", "parquet with the wrong schema", "symlink loop"])
def test_hostile_trade_files_exit_2_and_write_nothing(cli, engine, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("db", "import-trades", str(hostile(tmp_path, kind)))
    assert result.exit_code == 2 and KINDS[kind] in result.stderr, result.output
    assert count(engine, Trade) == 0


# VmHWM, the peak of this process image's own memory: getrusage's ru_maxrss survives exec and would report the
# parent's (pytest's) size when that is larger.
PEAK_RSS = (
    "import atexit, re, sys\n"
    "peak = lambda: int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
    "atexit.register(lambda: print('PEAK_RSS_KIB', peak(), file=sys.stderr))\n"
    "from aicash.cli.main import app\n"
    "app(sys.argv[1:], prog_name='aicash')\n"
)


def test_a_1_gib_line_is_not_loaded_into_memory(env, engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The real CLI in its own process: its peak resident memory stays far below the file's size."""
    path = one_gib_line(tmp_path / "long.csv")
    result = subprocess.run([sys.executable, "-c", PEAK_RSS, "data", "ingest", str(path), "--symbol", "EURUSD"],
                            capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert result.returncode == 2 and "line 2" in result.stderr and "line too long" in result.stderr, result.stderr
    peak_mib = int(result.stderr.rsplit("PEAK_RSS_KIB", 1)[1].split()[0]) / 1024
    assert peak_mib < 400, f"peak RSS {peak_mib:.0f} MiB for a 1 GiB file"
    assert count(engine, MarketCandle) == 0
