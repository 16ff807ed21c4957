"""What the monitor knows from the database, as one snapshot and as Prometheus gauges.

`aicash monitor check` evaluates the alert rules on a snapshot; `aicash monitor metrics` exports the same
snapshot for Prometheus (a text file for node-exporter's textfile collector, or an HTTP endpoint that rebuilds it
on every scrape), so the rules in `monitoring/alerts.yml` see the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from aicash.db.models import DriftReport, TrainingRun
from aicash.monitoring.outcomes import LiveFigures, live_figures
from aicash.monitoring.window import utc
from aicash.registry import traffic_split
from aicash.settings import Settings

LIVE_WINDOW = timedelta(days=7)
TRAINING_FAILURE_WINDOW = timedelta(hours=24)

LIVE_ACCURACY = "aicash_live_accuracy"
LIVE_WIN_RATE = "aicash_live_win_rate"
LIVE_DECISIONS = "aicash_live_decisions"
LIVE_TRADES = "aicash_live_trades"
MIN_ACCURACY = "aicash_min_accuracy"
DRIFT_DETECTED = "aicash_drift_detected"
DRIFT_SHARE = "aicash_drift_share"
DRIFT_TIMESTAMP = "aicash_drift_report_timestamp_seconds"
TRAINING_FAILED = "aicash_training_runs_failed"
EXPORTED = (LIVE_ACCURACY, LIVE_WIN_RATE, LIVE_DECISIONS, LIVE_TRADES, MIN_ACCURACY, DRIFT_DETECTED, DRIFT_SHARE,
            DRIFT_TIMESTAMP, TRAINING_FAILED)


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
class MonitorStatus:
    at: datetime
    serving: list[tuple[str, float]]  # the registry's traffic split, canary first
    live: dict[str, LiveFigures]  # serving versions' figures over LIVE_WINDOW
    drift: LatestDrift | None
    failed_runs: list[FailedRun]  # failed in TRAINING_FAILURE_WINDOW
    min_accuracy: float


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
    )


def gauges(status: MonitorStatus) -> Iterator[GaugeMetricFamily]:
    """The snapshot as Prometheus gauge families (names in EXPORTED)."""
    accuracy = GaugeMetricFamily(LIVE_ACCURACY, "Live accuracy of a serving model version over the last 7 days "
                                 "(evaluated decisions)", labels=["model_version"])
    win_rate = GaugeMetricFamily(LIVE_WIN_RATE, "Live win rate of traded signals over the last 7 days",
                                 labels=["model_version"])
    decisions = GaugeMetricFamily(LIVE_DECISIONS, "Evaluated decisions over the last 7 days", labels=["model_version"])
    trades = GaugeMetricFamily(LIVE_TRADES, "Evaluated traded signals over the last 7 days", labels=["model_version"])
    for version, _ in status.serving:
        figures = status.live.get(version)
        decisions.add_metric([version], figures.decisions if figures else 0)
        trades.add_metric([version], figures.trades if figures else 0)
        if figures and figures.accuracy is not None:
            accuracy.add_metric([version], figures.accuracy)
        if figures and figures.win_rate is not None:
            win_rate.add_metric([version], figures.win_rate)
    yield from (accuracy, win_rate, decisions, trades)
    yield GaugeMetricFamily(MIN_ACCURACY, "MIN_ACCURACY setting: the lowest acceptable accuracy",
                            value=status.min_accuracy)
    drift = status.drift
    yield GaugeMetricFamily(DRIFT_DETECTED, "1 when the latest drift report detected drift",
                            value=float(bool(drift and drift.detected)))
    yield GaugeMetricFamily(DRIFT_SHARE, "Share of input features drifted in the latest drift report",
                            value=drift.drifted_share if drift else 0.0)
    yield GaugeMetricFamily(DRIFT_TIMESTAMP, "Unix time of the latest drift report",
                            value=drift.at.timestamp() if drift else 0.0)
    yield GaugeMetricFamily(TRAINING_FAILED, "Training runs failed in the last 24 hours",
                            value=len(status.failed_runs))


class StatusCollector(Collector):
    """Rebuilds the snapshot from the database on every scrape."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine, self.settings = engine, settings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from gauges(collect_status(self.engine, self.settings))


class _Fixed(Collector):
    def __init__(self, status: MonitorStatus) -> None:
        self.status = status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from gauges(self.status)


def registry_of(status: MonitorStatus) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(status))
    return registry


def write_textfile(status: MonitorStatus, path: Path) -> Path:
    """Atomically write the gauges for node-exporter's textfile collector."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry_of(status))
    return path
