"""Monitoring test data: indicator rows around plausible levels, registered versions with metrics and a reference
sample, and `predictions` / `prediction_outcomes` rows as the service and the outcome job write them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from aicash.db.models import Prediction, PredictionOutcome
from aicash.indicators import INDICATOR_COLUMNS
from aicash.registry import register_model, store_for
from aicash.settings import Settings

# A plausible level and spread per indicator (EURUSD-like prices).
LEVELS: dict[str, tuple[float, float]] = {
    "rsi_value": (50, 10), "adx_value": (25, 8), "ema_12": (1.10, 0.02), "ema_26": (1.10, 0.02),
    "ema_50": (1.10, 0.02), "macd_line": (0.0, 0.001), "macd_signal": (0.0, 0.001), "macd_histogram": (0.0, 0.0004),
    "bb_upper": (1.11, 0.02), "bb_lower": (1.09, 0.02), "bb_percent_b": (0.5, 0.3), "atr_value": (0.002, 0.0005),
    "stoch_k": (50, 20), "stoch_d": (50, 18), "log_return": (0.0, 0.001), "volatility_20": (0.001, 0.0003),
}
# Out-of-sample confusion (rows true, columns predicted SELL/HOLD/BUY): the model predicts 30/40/30 %.
CONFUSION = [[200, 150, 100], [50, 200, 50], [50, 50, 150]]
METRICS = {
    "aggregate": {"model": {"accuracy": 0.58, "win_rate": 0.55, "confusion": CONFUSION}},
    "config": {"horizon_bars": 4, "flat_threshold": 0.5, "confidence_threshold": 0.4, "cost_per_trade": 0.0001},
    "data": {"series": ["EURUSD/1h"], "class_balance": {"SELL": 0.3, "HOLD": 0.4, "BUY": 0.3}},
}
SIGNAL_SHARES = {"SELL": 0.3, "HOLD": 0.4, "BUY": 0.3}


# Five features shifted by two standard deviations: a window the drift report must flag.
SHIFTED = {"rsi_value": 2.0, "adx_value": 2.0, "stoch_k": 2.0, "stoch_d": 2.0, "bb_percent_b": 2.0}


def cluster_drift_run(engine: Engine, monkeypatch: Any, home: Path, bucket: str, endpoint: str) -> Any:
    """The drift job over the last 24 h in cluster mode (artifacts and reports in `bucket` at `endpoint`), on a
    production version `v1` whose 500 predictions are SHIFTED; returns the job's run."""
    from aicash.registry import promote
    from aicash.settings import load_settings
    from monitoring.drift_job import run_drift_job

    monkeypatch.setenv("USE_S3_STORAGE", "true")
    monkeypatch.setenv("S3_BUCKET", bucket)
    monkeypatch.setenv("S3_ENDPOINT_URL", endpoint)
    settings = load_settings()
    register_version(engine, settings, home / "s3-v1", "v1", reference=indicator_frame(1500, seed=1))
    promote(engine, "v1", 100, actor="test")
    log_predictions(engine, indicator_frame(500, seed=13, shift=SHIFTED), version="v1")
    return run_drift_job(engine, settings, timedelta(hours=24))


def indicator_frame(rows: int, seed: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    """Indicators drawn around LEVELS; `shift` moves a column by that many standard deviations."""
    rng = np.random.default_rng(seed)
    shift = shift or {}
    return pd.DataFrame({c: rng.normal(m + shift.get(c, 0.0) * s, s, rows) for c, (m, s) in LEVELS.items()})[
        list(INDICATOR_COLUMNS)]


def register_version(
    engine: Engine, settings: Settings, folder: Path, version: str, *, reference: pd.DataFrame | None = None,
    metrics: dict[str, Any] | None = None, approved: bool = True,
) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pt").write_bytes(version.encode() * 64)
    (folder / "metrics.json").write_text(json.dumps(metrics or METRICS))
    if reference is not None:
        reference.to_parquet(folder / "reference.parquet", index=False)
    register_model(engine, store_for(settings), version=version, artifacts_dir=folder, metrics=metrics or METRICS,
                   approved=approved, reasons=[] if approved else ["accuracy too low"], actor="test")
    return version


def log_predictions(
    engine: Engine, features: pd.DataFrame, *, version: str, at: datetime | None = None,
    signals: list[str] | None = None, symbol: str = "EURUSD", timeframe: str = "1h", spacing: timedelta | None = None,
    latency_ms: float = 2.0, confidence: float = 0.6,
) -> list[int]:
    """Rows in `predictions` as the service logs them; returns their ids. Times go back from `at` (default now)."""
    at = at or datetime.now(UTC) - timedelta(minutes=1)
    spacing = spacing if spacing is not None else timedelta(seconds=1)
    rng = np.random.default_rng(len(features))
    signals = signals or list(rng.choice(list(SIGNAL_SHARES), len(features), p=list(SIGNAL_SHARES.values())))
    rows = []
    for i, (values, signal) in enumerate(zip(features.to_dict("records"), signals, strict=True)):
        request_id = uuid.uuid4().hex
        rows.append({
            "request_id": request_id, "symbol": symbol,
            "request": {"symbol": symbol, "timeframe": timeframe, "indicators": {}, "request_id": request_id},
            "features": {k: float(v) for k, v in values.items()},
            "output": {"signal": signal, "confidence": confidence, "model_version": version, "latency_ms": latency_ms},
            "model_version": version, "latency_ms": latency_ms, "created_at": at - spacing * i,
        })
    with engine.begin() as conn:
        result = conn.execute(Prediction.__table__.insert().returning(Prediction.id), rows)
        return [int(r[0]) for r in result]


def log_outcomes(engine: Engine, version: str, *, correct: int, wrong: int, start: datetime,
                 wins: int | None = None, latency_ms: float = 2.0, confidence: float = 0.6) -> None:
    """`correct + wrong` evaluated BUY decisions on distinct bars, each with `confidence`; the first `wins` traded
    ones win."""
    n = correct + wrong
    wins = correct if wins is None else wins
    ids = log_predictions(engine, indicator_frame(n, seed=n), version=version, at=start + timedelta(seconds=n),
                          signals=["BUY"] * n, latency_ms=latency_ms)
    rows = []
    for i, prediction_id in enumerate(ids):
        entry = start + timedelta(hours=i)
        rows.append({
            "prediction_id": prediction_id, "model_version": version, "symbol": "EURUSD", "timeframe": "1h",
            "signal": "BUY", "confidence": confidence, "predicted_at": start + timedelta(seconds=n - i),
            "horizon_bars": 4,
            "entry_ts": entry, "exit_ts": entry + timedelta(hours=4), "entry_close": 1.1, "exit_close": 1.1,
            "realized_return": 0.001 if i < wins else -0.001, "realized_signal": "BUY" if i < correct else "SELL",
            "correct": i < correct, "traded": True, "win": i < wins, "evaluated_at": datetime.now(UTC),
        })
    with engine.begin() as conn:
        conn.execute(PredictionOutcome.__table__.insert(), rows)
