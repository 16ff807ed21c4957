"""The whole `lstm-training` pipeline with KFP's local runner: on the EURUSD sample with the default training
config, and on 1,000,000 synthetic bars (10 symbols) with a large-data config (rolling training window)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine

from aicash.db.engine import engine_for
from aicash.market.ingest import ingest_frame
from aicash.market.samples import load_sample
from aicash.market.synth import synth_universe
from aicash.settings import load_settings
from benchmarks.common import Row, row

LARGE = {"max_train_samples": 50_000, "max_epochs": 3, "n_folds": 3, "patience": 1, "batch_size": 256}


def _timed_pipeline(load: Callable[[Engine], None], symbols: list[str], config: dict) -> float:
    from pipelines.runner import run_local

    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="aicash-bench-pipeline-") as home:
        os.environ.pop("DATABASE_URL", None)
        os.environ["AICASH_HOME"] = home
        try:
            engine = engine_for(load_settings())
            from aicash.db import migrate

            migrate.upgrade(engine)
            load(engine)
            start = time.perf_counter()
            run_local("lstm-training", {"symbols": symbols, "timeframe": "1h", "config_json": json.dumps(config)},
                      Path(home) / "kfp")
            return time.perf_counter() - start
        finally:
            os.environ.clear()
            os.environ.update(saved)


def run() -> list[Row]:
    eurusd = _timed_pipeline(lambda e: ingest_frame(e, load_sample("eurusd-1h"), "EURUSD", "1h"), ["EURUSD"], {})
    rows = [row("lstm-training pipeline, EURUSD sample, local runner", eurusd, "s", "< 180 s", eurusd < 180)]

    def load_large(engine: Engine) -> None:
        for symbol, candles in synth_universe(10, 100_000, seed=1, timeframe_step=pd.Timedelta("1h")):
            ingest_frame(engine, candles, symbol, "1h")

    symbols = [f"SYN{i:03d}" for i in range(1, 11)]
    large = _timed_pipeline(load_large, symbols, LARGE)
    rows.append(row(f"lstm-training pipeline, 1M synthetic bars (10 symbols), config {LARGE}", large, "s",
                    "< 900 s", large < 900))
    return rows
