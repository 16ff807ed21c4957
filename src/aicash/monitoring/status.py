"""What the monitor knows from the database, as one snapshot and as Prometheus gauges.

`aicash monitor check` evaluates the alert rules on a snapshot; `aicash monitor metrics` exports the same
snapshot for Prometheus (a text file for node-exporter's textfile collector, or an HTTP endpoint that rebuilds it
on every scrape), so the rules in `monitoring/alerts.yml` see the same numbers.

Two kinds of live figures are exported. `aicash_live_directional_accuracy`, `aicash_live_accuracy` and their
siblings are rolling: each serving version's decisions made in the last 7 days, pooled; the accuracy alert reads the
directional accuracy of traded signals, the measure the training gate's MIN_ACCURACY applies to (the three-class
`aicash_live_accuracy` is for dashboards). `aicash_live_daily_*{model_version,day}` are the stored per-day rows of
`live_metrics` (the table `aicash monitor outcomes` prints) for the last 7 UTC days, every version that has one: at
most 7 series per version, for dashboards that want the daily figures as stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DBAPIError

from aicash.db.engine import is_unreachable
from aicash.db.models import DriftReport, TrainingRun
from aicash.monitoring.outcomes import LiveFigures, daily_metrics, live_figures
from aicash.monitoring.window import utc
from aicash.registry import traffic_split
from aicash.settings import Settings

LIVE_WINDOW = timedelta(days=7)
TRAINING_FAILURE_WINDOW = timedelta(hours=24)

LIVE_ACCURACY = "aicash_live_accuracy"
LIVE_DIRECTIONAL_ACCURACY = "aicash_live_directional_accuracy"
LIVE_WIN_RATE = "aicash_live_win_rate"
LIVE_DECISIONS = "aicash_live_decisions"
LIVE_TRADES = "aicash_live_trades"
MIN_ACCURACY = "aicash_min_accuracy"
DRIFT_DETECTED = "aicash_drift_detected"
DRIFT_SHARE = "aicash_drift_share"
DRIFT_TIMESTAMP = "aicash_drift_report_timestamp_seconds"
TRAINING_FAILED = "aicash_training_runs_failed"
DAILY_ACCURACY = "aicash_live_daily_accuracy"
DAILY_WIN_RATE = "aicash_live_daily_win_rate"
DAILY_DECISIONS = "aicash_live_daily_decisions"
DAILY_TRADES = "aicash_live_daily_trades"
DATABASE_UP = "aicash_database_up"
LIVE_CONFIDENCE = "aicash_live_confidence"
MIN_LIVE_WIN_RATE = "aicash_min_live_win_rate"
MIN_LIVE_CONFIDENCE = "aicash_min_live_confidence"
EXPORTED = (LIVE_ACCURACY, LIVE_WIN_RATE, LIVE_DECISIONS, LIVE_TRADES, MIN_ACCURACY, DRIFT_DETECTED, DRIFT_SHARE,
            DRIFT_TIMESTAMP, TRAINING_FAILED, DAILY_ACCURACY, DAILY_WIN_RATE, DAILY_DECISIONS, DAILY_TRADES,
            DATABASE_UP, LIVE_CONFIDENCE, MIN_LIVE_WIN_RATE, MIN_LIVE_CONFIDENCE, LIVE_DIRECTIONAL_ACCURACY)


@dataclass(frozen=True)
class LatestDrift:
    at: datetime
    model_version: str
    detected: bool
    drifted_share: float
    location: str


@dataclass(frozen=True)
class FailedRun:
    id: int
    pipeline: str
    at: datetime
    error: str


@dataclass(frozen=True)
class DailyFigures:
    """One stored `live_metrics` row: a model version's figures over the decisions it made on one UTC day."""

    model_version: str
    day: date
    decisions: int
    accuracy: float | None
    trades: int
    win_rate: float | None


@dataclass(frozen=True)
class MonitorStatus:
    at: datetime
    serving: list[tuple[str, float]]  # the registry's traffic split, canary first
    live: dict[str, LiveFigures]  # serving versions' figures over LIVE_WINDOW, pooled
    drift: LatestDrift | None
    failed_runs: list[FailedRun]  # failed in TRAINING_FAILURE_WINDOW
    min_accuracy: float
    daily: list[DailyFigures] = field(default_factory=list)  # live_metrics rows of the last LIVE_WINDOW days
    min_live_win_rate: float = 0.55  # MIN_LIVE_WIN_RATE
    min_live_confidence: float = 0.70  # MIN_LIVE_CONFIDENCE


def _number(value: object) -> float | None:
    return None if value is None or value != value else float(value)  # type: ignore[arg-type]


def daily_figures(engine: Engine, at: datetime) -> list[DailyFigures]:
    """The stored per-day rows of every version for the UTC days of LIVE_WINDOW ending with `at`'s day."""
    frame = daily_metrics(engine, (at - LIVE_WINDOW + timedelta(days=1)).date())
    return [DailyFigures(str(r.model_version), r.day, int(r.decisions), _number(r.accuracy), int(r.trades),
                         _number(r.win_rate)) for r in frame.itertuples()]


def collect_status(engine: Engine, settings: Settings, now: datetime | None = None) -> MonitorStatus:
    at = utc(now or datetime.now(UTC))
    serving = traffic_split(engine)
    versions = [v for v, _ in serving]
    live = live_figures(engine, at - LIVE_WINDOW, at, versions) if versions else {}
    with engine.connect() as conn:
        latest = conn.execute(select(DriftReport).order_by(DriftReport.created_at.desc(), DriftReport.id.desc())
                              .limit(1)).first()
        ended = func.coalesce(TrainingRun.finished_at, TrainingRun.started_at)
        failed = conn.execute(select(TrainingRun.id, TrainingRun.pipeline, ended, TrainingRun.error).where(
            TrainingRun.status == "failed", ended >= at - TRAINING_FAILURE_WINDOW).order_by(TrainingRun.id)).all()
    drift = None
    if latest is not None:
        row = latest
        drift = LatestDrift(utc(row.created_at), row.model_version, bool(row.detected), float(row.drifted_share),
                            row.location)
    return MonitorStatus(
        at=at, serving=serving, live=live, drift=drift,
        failed_runs=[FailedRun(int(i), p, utc(t) if isinstance(t, datetime) else at, e or "") for i, p, t, e in failed],
        min_accuracy=settings.min_accuracy,
        daily=daily_figures(engine, at),
        min_live_win_rate=settings.min_live_win_rate,
        min_live_confidence=settings.min_live_confidence,
    )


def gauges(status: MonitorStatus) -> Iterator[GaugeMetricFamily]:
    """The snapshot as Prometheus gauge families (names in EXPORTED)."""
    accuracy = GaugeMetricFamily(LIVE_ACCURACY, "Live three-class (BUY, HOLD, SELL) accuracy of a serving model "
                                 "version over its decisions of the last 7 days, pooled (rolling)",
                                 labels=["model_version"])
    directional = GaugeMetricFamily(LIVE_DIRECTIONAL_ACCURACY, "Live directional accuracy of a serving version's "
                                    "traded signals over the last 7 days, pooled (rolling): the share whose side had "
                                    "the sign of the realized return, before costs", labels=["model_version"])
    win_rate = GaugeMetricFamily(LIVE_WIN_RATE, "Live win rate of a serving version's traded signals over the last "
                                 "7 days, pooled (rolling)", labels=["model_version"])
    decisions = GaugeMetricFamily(LIVE_DECISIONS, "Evaluated decisions over the last 7 days (rolling)",
                                  labels=["model_version"])
    trades = GaugeMetricFamily(LIVE_TRADES, "Evaluated traded signals over the last 7 days (rolling)",
                               labels=["model_version"])
    for version, _ in status.serving:
        figures = status.live.get(version)
        decisions.add_metric([version], figures.decisions if figures else 0)
        trades.add_metric([version], figures.trades if figures else 0)
        if figures and figures.accuracy is not None:
            accuracy.add_metric([version], figures.accuracy)
        if figures and figures.directional_accuracy is not None:
            directional.add_metric([version], figures.directional_accuracy)
        if figures and figures.win_rate is not None:
            win_rate.add_metric([version], figures.win_rate)
    yield from (accuracy, directional, win_rate, decisions, trades)
    yield from _daily_gauges(status.daily)
    yield GaugeMetricFamily(MIN_ACCURACY, "MIN_ACCURACY setting: the lowest acceptable directional accuracy of "
                            "traded signals (before costs)", value=status.min_accuracy)
    yield from _guide_target_gauges(status)
    drift = status.drift
    yield GaugeMetricFamily(DRIFT_DETECTED, "1 when the latest drift report detected drift",
                            value=float(bool(drift and drift.detected)))
    yield GaugeMetricFamily(DRIFT_SHARE, "Share of input features drifted in the latest drift report",
                            value=drift.drifted_share if drift else 0.0)
    yield GaugeMetricFamily(DRIFT_TIMESTAMP, "Unix time of the latest drift report",
                            value=drift.at.timestamp() if drift else 0.0)
    yield GaugeMetricFamily(TRAINING_FAILED, "Training runs failed in the last 24 hours",
                            value=len(status.failed_runs))


def _guide_target_gauges(status: MonitorStatus) -> Iterator[GaugeMetricFamily]:
    """Live average confidence per serving version, and the guide's live targets the alerts compare with."""
    confidence = GaugeMetricFamily(LIVE_CONFIDENCE, "Average confidence (the predicted class's probability) of a "
                                   "serving version's decisions over the last 7 days (rolling)",
                                   labels=["model_version"])
    for version, _ in status.serving:
        figures = status.live.get(version)
        if figures and figures.average_confidence is not None:
            confidence.add_metric([version], figures.average_confidence)
    yield confidence
    yield GaugeMetricFamily(MIN_LIVE_WIN_RATE, "MIN_LIVE_WIN_RATE setting: the lowest acceptable live win rate",
                            value=status.min_live_win_rate)
    yield GaugeMetricFamily(MIN_LIVE_CONFIDENCE, "MIN_LIVE_CONFIDENCE setting: the lowest acceptable live average "
                            "confidence", value=status.min_live_confidence)


def _daily_gauges(rows: list[DailyFigures]) -> Iterator[GaugeMetricFamily]:
    labels = ["model_version", "day"]
    accuracy = GaugeMetricFamily(DAILY_ACCURACY, "Live accuracy of a model version's decisions made on one UTC day "
                                 "(stored in live_metrics)", labels=labels)
    win_rate = GaugeMetricFamily(DAILY_WIN_RATE, "Live win rate of a model version's traded signals of one UTC day",
                                 labels=labels)
    decisions = GaugeMetricFamily(DAILY_DECISIONS, "Evaluated decisions of one UTC day", labels=labels)
    trades = GaugeMetricFamily(DAILY_TRADES, "Evaluated traded signals of one UTC day", labels=labels)
    for row in rows:
        key = [row.model_version, row.day.isoformat()]
        decisions.add_metric(key, row.decisions)
        trades.add_metric(key, row.trades)
        if row.accuracy is not None:
            accuracy.add_metric(key, row.accuracy)
        if row.win_rate is not None:
            win_rate.add_metric(key, row.win_rate)
    yield from (accuracy, win_rate, decisions, trades)


class StatusCollector(Collector):
    """Rebuilds the snapshot from the database on every scrape."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine, self.settings = engine, settings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            status: MonitorStatus | None = collect_status(self.engine, self.settings)
        except DBAPIError as exc:
            if not is_unreachable(exc):
                raise
            status = None
        yield from exported_gauges(status)


def exported_gauges(status: MonitorStatus | None) -> Iterator[GaugeMetricFamily]:
    """`aicash_database_up` and the snapshot's gauges; with no snapshot (the database unreachable) only the former,
    at 0, which `AicashDatabaseUnreachable` reads."""
    yield GaugeMetricFamily(DATABASE_UP, "1 when the monitor could read the database, 0 when it was unreachable",
                            value=float(status is not None))
    if status is not None:
        yield from gauges(status)


class _Fixed(Collector):
    def __init__(self, status: MonitorStatus | None) -> None:
        self.status = status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from exported_gauges(self.status)


def registry_of(status: MonitorStatus | None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(status))
    return registry


def write_textfile(status: MonitorStatus | None, path: Path) -> Path:
    """Atomically write the gauges for node-exporter's textfile collector."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry_of(status))
    return path
