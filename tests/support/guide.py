"""A registry shaped like the guide's: versions registered with the trainer's metrics and training data range,
candles in the store, promotions through the registry (audited), for the tests of the guide's calls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from aicash.market.store import upsert_candles
from aicash.registry import LocalArtifactStore, promote, register_model
from tests.support.registry import make_artifacts

START = datetime(2024, 1, 1, tzinfo=UTC)
CONFUSION = [[30, 10, 10], [5, 20, 5], [10, 10, 40]]  # rows: true SELL/HOLD/BUY; columns: predicted


def trainer_metrics(last_bar: datetime | None, series: tuple[str, ...] = ("EURUSD/1h",)) -> dict[str, Any]:
    """Metrics as the trainer's metrics.json holds them (the parts GET /models and POST /train read)."""
    model = {"samples": 140, "accuracy": 0.64, "trades": 90, "coverage": 0.6, "win_rate": 0.56,
             "average_confidence": 0.71, "calibration_error": 0.05, "cumulative_return": 0.02, "sharpe": 1.3,
             "confusion": CONFUSION, "directional_accuracy": 0.61, "information_coefficient": 0.04}
    data: dict[str, Any] = {"series": list(series), "samples": 140, "first_ts": str(pd.Timestamp(START)),
                            "last_ts": None if last_bar is None else str(pd.Timestamp(last_bar - timedelta(hours=4)))}
    if last_bar is not None:
        data["last_bar_ts"] = str(pd.Timestamp(last_bar))
    search = {"experiment_id": None, "trials": 1, "selected_trial": 1, "family": "lstm", "params": {},
              "sharpe_variance": 0.0, "pbo": None,
              "deflated_sharpe": {"probability": 0.97, "sharpe": 0.03, "expected_max_sharpe": 0.0, "n_trials": 1,
                                  "observations": 140, "skewness": 0.0, "kurtosis": 3.0}}
    return {"aggregate": {"model": model, "baselines": {}}, "data": data, "search": search}


def register(engine: Engine, store_dir: Path, version: str, metrics: dict[str, Any], approved: bool = True) -> str:
    folder = make_artifacts(store_dir / f"src-{version}")
    register_model(engine, LocalArtifactStore(store_dir / "store"), version=version, artifacts_dir=folder,
                   metrics=metrics, approved=approved, reasons=[] if approved else ["failed: test"], actor="test")
    return version


def make_production(engine: Engine, store_dir: Path, version: str, metrics: dict[str, Any]) -> str:
    register(engine, store_dir, version, metrics)
    promote(engine, version, 100, actor="test")
    return version


def add_candles(engine: Engine, until: datetime, symbol: str = "EURUSD", timeframe: str = "1h") -> None:
    """Hourly candles from START up to and including `until`."""
    ts = pd.date_range(START, until, freq="1h")
    frame = pd.DataFrame({"ts": ts, "open": 1.1, "high": 1.2, "low": 1.0, "close": 1.1, "volume": 100.0})
    upsert_candles(engine, symbol, timeframe, frame)
