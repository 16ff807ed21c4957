"""SQLAlchemy 2 models of the platform's tables; the same code runs on SQLite and PostgreSQL.

The schema itself is owned by the Alembic migrations in `aicash/db/migrations`; a test checks that these
models and the migrations agree.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JSONType = JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY columns; PostgreSQL gets a 64-bit identity.
IdType = BigInteger().with_variant(Integer(), "sqlite")

MODEL_STATUSES = ("candidate", "approved", "rejected", "production", "archived")
# `submitted`, `scheduled`: handed to a KFP cluster; `skipped`, `cancelled`: KFP's outcomes (`aicash pipeline status`);
# `skipped` also: POST /train without force_retrain when no new bar arrived since the production model's data ended
RUN_STATUSES = ("running", "succeeded", "failed", "submitted", "scheduled", "skipped", "cancelled")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONType, datetime: DateTime(timezone=True)}


class MarketCandle(Base):
    """One OHLCV bar; the natural key (symbol, timeframe, ts) makes re-ingestion an upsert."""

    __tablename__ = "market_candles"

    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    timeframe: Mapped[str] = mapped_column(String(8), primary_key=True)
    ts: Mapped[datetime] = mapped_column(primary_key=True)
    open: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    close: Mapped[float] = mapped_column(Float)
    volume: Mapped[float] = mapped_column(Float)


class IngestedObject(Base):
    """An object-store file that `aicash data ingest --from s3://...` has read; the ETag identifies its content, so a
    re-dropped identical file is skipped and a changed one (new ETag) is read again."""

    __tablename__ = "ingested_objects"

    bucket: Mapped[str] = mapped_column(String(63), primary_key=True)
    key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    etag: Mapped[str] = mapped_column(String(128), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    rows: Mapped[int] = mapped_column(Integer)
    ingested_at: Mapped[datetime] = mapped_column(default=utcnow)


class MLModel(Base):
    """A registered model version with its lifecycle status and canary traffic share."""

    __tablename__ = "ml_models"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_ml_models_name_version"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="candidate")
    traffic_percentage: Mapped[float] = mapped_column(Float, default=0.0)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reasons: Mapped[dict[str, Any]] = mapped_column(default=dict)
    artifact_uri: Mapped[str | None] = mapped_column(Text)
    artifact_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TrainingRun(Base):
    """One run of a training or optimization pipeline, kept whether it succeeds or fails."""

    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    pipeline: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="running")
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    model_version: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class Prediction(Base):
    """One answered prediction: what was asked, the features used, the answer, who answered, how fast."""

    __tablename__ = "predictions"
    __table_args__ = (Index("ix_predictions_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    symbol: Mapped[str] = mapped_column(String(32))
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)
    features: Mapped[dict[str, Any]] = mapped_column(default=dict)
    output: Mapped[dict[str, Any]] = mapped_column(default=dict)
    model_version: Mapped[str] = mapped_column(String(64))
    latency_ms: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Trade(Base):
    """A real trade with the indicator values at entry and its outcome."""

    __tablename__ = "trades"
    __table_args__ = (UniqueConstraint("symbol", "side", "entry_time", name="uq_trades_symbol_side_entry"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    entry_time: Mapped[datetime] = mapped_column()
    exit_time: Mapped[datetime | None] = mapped_column()
    entry_price: Mapped[float] = mapped_column(Float)
    exit_price: Mapped[float | None] = mapped_column(Float)
    quantity: Mapped[float] = mapped_column(Float)
    pnl: Mapped[float | None] = mapped_column(Float)
    entry_features: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str] = mapped_column(String(64), default="import")


class SignalWeights(Base):
    """A version of the weights that turn indicator signals into the rule signal's composite score."""

    __tablename__ = "signal_weights"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    weights: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str] = mapped_column(String(32))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """An API key; only its SHA-256 hash and a short prefix for humans are stored, never the key."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()


class AuditLog(Base):
    """Who did what to which object, when, and why."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class PredictionOutcome(Base):
    """What happened after a logged prediction: the realized move over the model's horizon, right or wrong."""

    __tablename__ = "prediction_outcomes"
    __table_args__ = (Index("ix_prediction_outcomes_version_predicted_at", "model_version", "predicted_at"),)

    prediction_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("predictions.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    model_version: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(8))
    signal: Mapped[str] = mapped_column(String(4))
    confidence: Mapped[float] = mapped_column(Float)
    predicted_at: Mapped[datetime] = mapped_column()
    horizon_bars: Mapped[int] = mapped_column(Integer)
    entry_ts: Mapped[datetime] = mapped_column()
    exit_ts: Mapped[datetime] = mapped_column()
    entry_close: Mapped[float] = mapped_column(Float)
    exit_close: Mapped[float] = mapped_column(Float)
    realized_return: Mapped[float] = mapped_column(Float)
    realized_signal: Mapped[str] = mapped_column(String(4))
    correct: Mapped[bool] = mapped_column(Boolean)
    traded: Mapped[bool] = mapped_column(Boolean)
    win: Mapped[bool | None] = mapped_column(Boolean)
    evaluated_at: Mapped[datetime] = mapped_column(default=utcnow)


class LiveMetrics(Base):
    """Live accuracy and win rate of one model version on one UTC day, from its evaluated decisions."""

    __tablename__ = "live_metrics"

    model_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    decisions: Mapped[int] = mapped_column(Integer)
    correct: Mapped[int] = mapped_column(Integer)
    accuracy: Mapped[float] = mapped_column(Float)
    trades: Mapped[int] = mapped_column(Integer)
    wins: Mapped[int] = mapped_column(Integer)
    win_rate: Mapped[float | None] = mapped_column(Float)
    mean_trade_return: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DriftReport(Base):
    """One drift report run: window, verdict, which features drifted, where the report went."""

    __tablename__ = "drift_reports"
    __table_args__ = (Index("ix_drift_reports_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    model_version: Mapped[str] = mapped_column(String(64))
    window_start: Mapped[datetime] = mapped_column()
    window_end: Mapped[datetime] = mapped_column()
    current_rows: Mapped[int] = mapped_column(Integer)
    reference_rows: Mapped[int] = mapped_column(Integer)
    drift_share_threshold: Mapped[float] = mapped_column(Float)
    drifted_share: Mapped[float] = mapped_column(Float)
    detected: Mapped[bool] = mapped_column(Boolean)
    signal_drifted: Mapped[bool | None] = mapped_column(Boolean)
    scores: Mapped[dict[str, Any]] = mapped_column(default=dict)
    location: Mapped[str] = mapped_column(Text)
    emailed: Mapped[bool] = mapped_column(Boolean, default=False)
    retrain_run: Mapped[str | None] = mapped_column(String(128))


class Experiment(Base):
    """One model search: the series, the space it sampled, the winner, the evidence that the winner is not luck
    (deflated Sharpe, PBO), and the version it registered with the gate's decision (filled in after registration)."""

    __tablename__ = "experiments"
    __table_args__ = (Index("ix_experiments_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    pipeline: Mapped[str] = mapped_column(String(64))
    series: Mapped[list[str]] = mapped_column(JSONType, default=list)
    timeframe: Mapped[str] = mapped_column(String(8))
    space: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seed: Mapped[int | None] = mapped_column(Integer)
    sampler: Mapped[str] = mapped_column(String(32))
    trials: Mapped[int] = mapped_column(Integer)
    selected_trial: Mapped[int] = mapped_column(Integer)
    family: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    deflated_sharpe: Mapped[float | None] = mapped_column(Float)
    expected_max_sharpe: Mapped[float | None] = mapped_column(Float)
    sharpe_variance: Mapped[float | None] = mapped_column(Float)
    pbo: Mapped[float | None] = mapped_column(Float)
    search: Mapped[dict[str, Any]] = mapped_column(default=dict)
    equity: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    model_version: Mapped[str | None] = mapped_column(String(64))
    decision: Mapped[str | None] = mapped_column(String(16))
    reasons: Mapped[list[str]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class ExperimentTrial(Base):
    """One trial of a search: a family and its parameters, scored on the same walk-forward folds as every other."""

    __tablename__ = "experiment_trials"

    experiment_id: Mapped[int] = mapped_column(
        IdType, ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    family: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    accuracy: Mapped[float | None] = mapped_column(Float)
    directional_accuracy: Mapped[float | None] = mapped_column(Float)
    win_rate: Mapped[float | None] = mapped_column(Float)
    trades: Mapped[int | None] = mapped_column(Integer)
    coverage: Mapped[float | None] = mapped_column(Float)
    calibration_error: Mapped[float | None] = mapped_column(Float)
    sharpe: Mapped[float | None] = mapped_column(Float)
    information_coefficient: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float | None] = mapped_column(Float)
    selected: Mapped[bool] = mapped_column(Boolean, default=False)


__all__ = [
    "MODEL_STATUSES",
    "RUN_STATUSES",
    "ApiKey",
    "AuditLog",
    "Base",
    "DriftReport",
    "Experiment",
    "ExperimentTrial",
    "IngestedObject",
    "LiveMetrics",
    "MLModel",
    "MarketCandle",
    "Prediction",
    "PredictionOutcome",
    "SignalWeights",
    "Trade",
    "TrainingRun",
]
