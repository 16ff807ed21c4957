"""The whole `lstm-training` pipeline with KFP's local runner (local configuration: SQLite, Feast's file offline
store), timed end to end and per task.

- The EURUSD sample with the default training config.
- 1,000,000 synthetic bars (10 symbols of 100,000) with the cut-down config `LARGE`: a rolling window of at most
  50,000 training samples, 3 epochs, 3 folds. The default config (expanding window, 15 epochs, 5 folds) would fit
  the network on up to ~1M samples per fold, far beyond the 15-minute budget on 2 cores, so this measures the
  pipeline's handling of 1M bars, not a full-size fit.
- The `train` task alone on the same 1M bars and `LARGE` config, fed the columns `build-training-set` writes but
  computed by `with_indicators` instead of Feast's point-in-time join: what training costs at that size whatever
  the training-set step does.

Each case reports the training throughput recorded in the model's metrics (samples/s over every fit: the folds
and the final model). A case that fails is reported as failed, with the task it failed in; the others still run.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select

from aicash.db import migrate
from aicash.db.engine import engine_for
from aicash.db.models import MLModel
from aicash.indicators import INDICATOR_COLUMNS, with_indicators
from aicash.market.ingest import ingest_frame
from aicash.market.samples import load_sample
from aicash.market.synth import synth_universe
from aicash.settings import load_settings
from benchmarks.common import Row, row

LARGE = {"max_train_samples": 50_000, "max_epochs": 3, "n_folds": 3, "patience": 1, "batch_size": 256}
EURUSD_BUDGET_S, LARGE_BUDGET_S = 180.0, 900.0
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # KFP's local runner colours its messages


@contextmanager
def _environment() -> Iterator[Path]:
    """A fresh AICASH_HOME and no DATABASE_URL (local configuration), for this process and the pipeline's task
    processes; the previous environment is restored afterwards."""
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="aicash-bench-pipeline-") as home:
        os.environ.pop("DATABASE_URL", None)
        os.environ["AICASH_HOME"] = home
        try:
            yield Path(home)
        finally:
            os.environ.clear()
            os.environ.update(saved)


def _task_seconds(kfp_root: Path, started: float) -> dict[str, float]:
    """Seconds per task. The local runner runs the tasks one after another, so a task took from the previous
    task's executor output (or the pipeline's start) to its own; a task run once per series (in the ParallelFor)
    is the sum of its runs."""
    outputs = sorted(kfp_root.rglob("executor_output.json"), key=lambda p: p.stat().st_mtime)
    seconds: dict[str, float] = {}
    previous = started
    for path in outputs:
        seconds[path.parent.name] = seconds.get(path.parent.name, 0.0) + path.stat().st_mtime - previous
        previous = path.stat().st_mtime
    return seconds


def _timed_pipeline(load: Callable[[Engine], None], symbols: list[str], config: dict[str, Any]) -> dict[str, Any]:
    """Load the candles, run the pipeline; its seconds, per-task seconds, and the registered version's
    `metrics.json` (or the error when it failed)."""
    from pipelines.runner import run_local

    with _environment() as home:
        engine = engine_for(load_settings())
        migrate.upgrade(engine)
        load(engine)
        arguments = {"symbols": symbols, "timeframe": "1h", "config_json": json.dumps(config)}
        started, start = time.time(), time.perf_counter()
        outcome: dict[str, Any] = {}
        try:
            run_local("lstm-training", arguments, home / "kfp")
        except Exception as exc:  # reported as a failed row; the other cases still run
            outcome["error"] = ANSI.sub("", str(exc)).splitlines()[0]
        outcome["seconds"] = time.perf_counter() - start
        outcome["tasks"] = _task_seconds(home / "kfp", started)
        with engine.connect() as conn:
            outcome["metrics"] = conn.execute(select(MLModel.metrics).order_by(MLModel.id.desc())).scalars().first()
        engine.dispose()
        return outcome


def _rows(label: str, outcome: dict[str, Any], budget: float) -> list[Row]:
    tasks = ", ".join(f"{name} {s:.0f} s" for name, s in outcome["tasks"].items())
    if "error" in outcome:
        return [row(f"{label}: FAILED after {outcome['seconds']:.0f} s ({outcome['error']}); tasks done: {tasks}",
                    outcome["seconds"], "s", f"< {budget:.0f} s", False)]
    timings, data = outcome["metrics"]["timings"], outcome["metrics"]["data"]
    rate = float(timings["training_samples_per_second"])
    return [
        row(f"{label} ({tasks})" if tasks else label, outcome["seconds"], "s", f"< {budget:.0f} s",
            outcome["seconds"] < budget),
        row(f"{label}: training throughput (every fit)", rate, "samples/s", ">= 5,000 samples/s", rate >= 5000),
        row(f"{label}: walk-forward + final fit ({data['samples']:,} samples)", float(timings["total_seconds"]), "s"),
    ]


def _load_large(engine: Engine) -> None:
    for symbol, candles in synth_universe(10, 100_000, seed=1, timeframe_step=pd.Timedelta("1h")):
        ingest_frame(engine, candles, symbol, "1h")


def _large_frame() -> pd.DataFrame:
    candles = [c.assign(symbol=symbol, timeframe="1h")
               for symbol, c in synth_universe(10, 100_000, seed=1, timeframe_step=pd.Timedelta("1h"))]
    return with_indicators(pd.concat(candles, ignore_index=True)).reset_index(drop=True)


def _timed_train_step(frame: pd.DataFrame, config: dict[str, Any]) -> dict[str, Any]:
    """`pipelines.steps.train` (walk-forward, final fit, artifacts) on a ready training set."""
    from pipelines.steps import train

    with _environment() as home:
        path = home / "training_set.parquet"
        frame[["symbol", "timeframe", "ts", "close", *INDICATOR_COLUMNS]].to_parquet(path, index=False)
        start = time.perf_counter()
        metrics = train(str(path), json.dumps(config), str(home / "model"), log=lambda _: None)
        return {"seconds": time.perf_counter() - start, "tasks": {}, "metrics": metrics}


def run() -> list[Row]:
    eurusd = _timed_pipeline(lambda e: ingest_frame(e, load_sample("eurusd-1h"), "EURUSD", "1h"), ["EURUSD"], {})
    rows = _rows("whole lstm-training pipeline, EURUSD sample, local (SQLite, Feast file store)", eurusd,
                 EURUSD_BUDGET_S)
    symbols = [f"SYN{i:03d}" for i in range(1, 11)]
    large = _timed_pipeline(_load_large, symbols, LARGE)
    rows += _rows(f"whole lstm-training pipeline, 1M synthetic bars (10 symbols), local, config {LARGE}", large,
                  LARGE_BUDGET_S)
    train_only = _timed_train_step(_large_frame(), LARGE)
    rows += _rows("train task alone, 1M synthetic bars, training set from with_indicators (not Feast)", train_only,
                  LARGE_BUDGET_S)
    return rows
