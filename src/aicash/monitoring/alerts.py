"""The alert rules, defined once: rendered as Prometheus alerting rules (`monitoring/alerts.yml`, written by
`aicash monitor rules`) and evaluated directly by `aicash monitor check` against the service's `/metrics` and the
database, with the same thresholds.

Differences, by nature: Prometheus evaluates the latency over a 5-minute rate and honours `for:`; `check` is a
one-shot job, so it judges the histogram since the service started (or, with `--sample-seconds`, the requests
between two scrapes) and fires at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from aicash.monitoring import status as st
from aicash.monitoring.outcomes import LiveFigures
from aicash.monitoring.scrape import FEATURE_AGE_LIMIT_METRIC, FEATURE_AGE_METRIC, LATENCY_METRIC, FeatureAge, Histogram

PREDICT_ENDPOINT = "/predict"
LATENCY_P95_SECONDS = 1.0
MIN_LATENCY_REQUESTS = 10  # a p95 over fewer requests is one slow request
MIN_LIVE_DECISIONS = 100  # an average confidence over fewer decisions is noise
MIN_LIVE_TRADES = 30  # a win rate or directional accuracy over fewer trades is noise (the training gate's minimum too)
GROUP = "aicash"


@dataclass(frozen=True)
class Inputs:
    """What the rules are evaluated on."""

    status: st.MonitorStatus | None  # None when the database could not be read (`database_error` says why)
    latency: Histogram | None = None  # /predict latency histogram; None when not scraped
    latency_error: str | None = None  # why it could not be scraped
    feature_ages: tuple[FeatureAge, ...] | None = None  # the service's feature ages; None when not scraped
    feature_ages_error: str | None = None  # why they could not be scraped
    database_error: str | None = None  # why the database could not be read (it names the database, never a password)


@dataclass(frozen=True)
class AlertState:
    rule: str
    firing: bool
    detail: str
    error: bool = False  # the rule could not be evaluated (its source was unreachable)

    @property
    def state(self) -> str:
        return "error" if self.error else ("firing" if self.firing else "ok")


@dataclass(frozen=True)
class AlertRule:
    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    evaluate: Callable[[Inputs], AlertState] = field(compare=False, repr=False)
    needs_database: bool = True  # evaluated on `Inputs.status`: not evaluated while the database is unreachable

    def to_prometheus(self) -> dict[str, Any]:
        return {
            "alert": self.name, "expr": self.expr, "for": self.for_,
            "labels": {"severity": self.severity, "team": "ml"},
            "annotations": {"summary": self.summary, "description": self.description,
                            "runbook": "docs/monitoring.md#alerts"},
        }


# -- evaluations ------------------------------------------------------------------------------------------------
def _latency(inputs: Inputs) -> AlertState:
    name = "AicashPredictLatencyHigh"
    if inputs.latency_error:
        return AlertState(name, True, inputs.latency_error, error=True)
    if inputs.latency is None:
        return AlertState(name, False, "not checked (no service metrics scraped: --no-latency)")
    count = inputs.latency.count
    p95 = inputs.latency.quantile(0.95)
    if count < MIN_LATENCY_REQUESTS or math.isnan(p95):
        return AlertState(name, False, f"{count:g} /predict requests: fewer than {MIN_LATENCY_REQUESTS}, not judged")
    fires = p95 > LATENCY_P95_SECONDS
    return AlertState(name, fires, f"/predict p95 {p95 * 1000:.0f} ms over {count:g} requests "
                                   f"(limit {LATENCY_P95_SECONDS * 1000:.0f} ms)")


def _drift(inputs: Inputs) -> AlertState:
    name, drift = "AicashDriftDetected", inputs.status.drift
    if drift is None:
        return AlertState(name, False, "no drift report yet (run `aicash monitor drift`)")
    detail = (f"latest report {drift.at:%Y-%m-%d %H:%M} UTC on {drift.model_version}: "
              f"{drift.drifted_share:.0%} of features drifted; {drift.location}")
    return AlertState(name, drift.detected, ("drift detected, " if drift.detected else "no drift, ") + detail)


def _training(inputs: Inputs) -> AlertState:
    runs = inputs.status.failed_runs
    if not runs:
        return AlertState("AicashTrainingFailed", False, "no failed training run in the last 24 h")
    detail = "; ".join(f"run {r.id} {r.pipeline} at {r.at:%Y-%m-%d %H:%M}: {r.error[:200]}" for r in runs[-3:])
    return AlertState("AicashTrainingFailed", True, f"{len(runs)} failed in the last 24 h: {detail}")


def _accuracy(inputs: Inputs) -> AlertState:
    """The directional accuracy of traded signals (before costs), the measure MIN_ACCURACY means at the training gate;
    the three-class accuracy is exported, not judged."""
    status = inputs.status
    return _below(status, "AicashLiveAccuracyLow", "directional accuracy", "MIN_ACCURACY", status.min_accuracy,
                  MIN_LIVE_TRADES, "trades", lambda f: f.directional_accuracy, lambda f: f.trades)


def _below(status: st.MonitorStatus, name: str, figure: str, setting: str, limit: float, minimum: int, unit: str,
           value: Callable[[LiveFigures], float | None], count: Callable[[LiveFigures], int]) -> AlertState:
    """Fires for each serving version whose live `figure` is below `limit`, judged over at least `minimum` `unit`."""
    if not status.serving:
        return AlertState(name, False, "no model is serving")
    low, parts = [], []
    for version, _ in status.serving:
        f = status.live.get(version)
        n, v = (count(f), value(f)) if f else (0, None)
        if n < minimum or v is None:
            parts.append(f"{version}: {n} {unit} (< {minimum}, not judged)")
            continue
        parts.append(f"{version}: {figure} {v:.3f} over {n} {unit}")
        if v < limit:
            low.append(version)
    detail = "; ".join(parts) + f" ({setting} {limit:.3f})"
    return AlertState(name, bool(low), ("below minimum: " + ", ".join(low) + "; " if low else "") + detail)


def _win_rate(inputs: Inputs) -> AlertState:
    status = inputs.status
    return _below(status, "AicashLiveWinRateLow", "win rate", "MIN_LIVE_WIN_RATE", status.min_live_win_rate,
                  MIN_LIVE_TRADES, "trades", lambda f: f.win_rate, lambda f: f.trades)


def _confidence(inputs: Inputs) -> AlertState:
    status = inputs.status
    return _below(status, "AicashLiveConfidenceLow", "average confidence", "MIN_LIVE_CONFIDENCE",
                  status.min_live_confidence, MIN_LIVE_DECISIONS, "decisions", lambda f: f.average_confidence,
                  lambda f: f.decisions)


def _features_stale(inputs: Inputs) -> AlertState:
    name = "AicashFeaturesStale"
    if inputs.feature_ages_error:
        return AlertState(name, True, inputs.feature_ages_error, error=True)
    if inputs.feature_ages is None:
        return AlertState(name, False, "not checked (no service metrics scraped: --no-latency)")
    if not inputs.feature_ages:
        return AlertState(name, False, "no series read by the service yet")
    stale = [a for a in inputs.feature_ages if a.age_seconds > a.limit_seconds]
    parts = [f"{a.symbol} {a.timeframe}: {a.age_seconds:.0f} s old (limit {a.limit_seconds:g} s)"
             for a in (stale or inputs.feature_ages)]
    return AlertState(name, bool(stale), ("stale: " if stale else "fresh: ") + "; ".join(parts[:10]))


def _database(inputs: Inputs) -> AlertState:
    name = "AicashDatabaseUnreachable"
    if inputs.database_error is None:
        return AlertState(name, False, "the database answered")
    skipped = ", ".join(r.name for r in RULES if r.needs_database)
    return AlertState(name, True, f"{inputs.database_error} Not evaluated: {skipped}.")


def _not_evaluated(rule: AlertRule) -> AlertState:
    return AlertState(rule.name, False, "not evaluated: the database is unreachable (AicashDatabaseUnreachable)",
                      error=True)


_LATENCY_BUCKETS = f'{LATENCY_METRIC}_bucket{{endpoint="{PREDICT_ENDPOINT}"}}'
_LATENCY_COUNT = f'{LATENCY_METRIC}_count{{endpoint="{PREDICT_ENDPOINT}"}}'

RULES: tuple[AlertRule, ...] = (
    AlertRule(
        "AicashPredictLatencyHigh",
        f"histogram_quantile(0.95, sum by (le) (rate({_LATENCY_BUCKETS}[5m]))) > {LATENCY_P95_SECONDS:g}\n"
        f"and on() sum(increase({_LATENCY_COUNT}[5m])) >= {MIN_LATENCY_REQUESTS}",
        "5m", "page",
        "Prediction latency p95 above 1000 ms",
        "p95 of POST /predict has been {{ $value | humanizeDuration }} for 5 minutes (limit 1 s). Check CPU "
        "throttling, GC pauses and the feature store's latency.",
        _latency,
        needs_database=False,
    ),
    AlertRule(
        "AicashDriftDetected",
        f"{st.DRIFT_DETECTED} == 1",
        "0m", "warning",
        "Input or prediction drift detected",
        "The latest drift report found drift in the model's inputs or predicted signals; it was mailed to the ML "
        "team with the full Evidently report. Consider retraining (`aicash monitor drift --retrain`).",
        _drift,
    ),
    AlertRule(
        "AicashTrainingFailed",
        f"{st.TRAINING_FAILED} > 0",
        "0m", "warning",
        "A training run failed",
        "{{ $value }} training run(s) failed in the last 24 hours: see `aicash monitor check` and the pipeline logs.",
        _training,
    ),
    AlertRule(
        "AicashLiveAccuracyLow",
        f"{st.LIVE_DIRECTIONAL_ACCURACY} < on() group_left() {st.MIN_ACCURACY}\n"
        f"and {st.LIVE_TRADES} >= {MIN_LIVE_TRADES}",
        "30m", "warning",
        "Live directional accuracy of traded signals below MIN_ACCURACY",
        "{{ $labels.model_version }} called the direction right (before costs) on {{ $value | humanizePercentage }} "
        "of its traded signals over the last 7 days: directional accuracy of traded signals below MIN_ACCURACY, the "
        "training gate's measure. Roll back (`aicash models rollback`) or retrain.",
        _accuracy,
    ),
    AlertRule(
        "AicashFeaturesStale",
        f"{FEATURE_AGE_METRIC} > {FEATURE_AGE_LIMIT_METRIC}",
        "5m", "warning",
        "Predictions are served from stale features",
        "{{ $labels.symbol }} {{ $labels.timeframe }}: the latest bar the service read is "
        "{{ $value | humanizeDuration }} old, past MAX_FEATURE_AGE_BARS bars plus FEATURE_AGE_GRACE_SECONDS; answers "
        "say stale=true. Check ingestion and `aicash features materialize`.",
        _features_stale,
        needs_database=False,
    ),
    AlertRule(
        "AicashDatabaseUnreachable",
        f"{st.DATABASE_UP} == 0",
        "5m", "page",
        "The platform database is unreachable",
        "The monitor cannot connect to the database: training, promotions, API keys and the prediction log wait "
        "for it (the inference service keeps answering, degraded). `aicash db check` names the database and the "
        "error; see the runbook, \"Database unreachable\".",
        _database,
        needs_database=False,
    ),
    AlertRule(
        "AicashLiveWinRateLow",
        f"{st.LIVE_WIN_RATE} < on() group_left() {st.MIN_LIVE_WIN_RATE}\nand {st.LIVE_TRADES} >= {MIN_LIVE_TRADES}",
        "30m", "warning",
        "Live win rate below MIN_LIVE_WIN_RATE",
        "{{ $labels.model_version }} wins {{ $value | humanizePercentage }} of its traded signals over the last 7 "
        "days, below MIN_LIVE_WIN_RATE (the guide's target: above 55 %). Roll back (`aicash models rollback`) or "
        "retrain.",
        _win_rate,
    ),
    AlertRule(
        "AicashLiveConfidenceLow",
        f"{st.LIVE_CONFIDENCE} < on() group_left() {st.MIN_LIVE_CONFIDENCE}\n"
        f"and {st.LIVE_DECISIONS} >= {MIN_LIVE_DECISIONS}",
        "30m", "warning",
        "Live average confidence below MIN_LIVE_CONFIDENCE",
        "{{ $labels.model_version }}'s decisions over the last 7 days have an average confidence of "
        "{{ $value | humanizePercentage }}, below MIN_LIVE_CONFIDENCE (the guide's target: above 70 %). Check drift "
        "(`aicash monitor drift`) and retrain.",
        _confidence,
    ),
)


def rules_document() -> dict[str, Any]:
    return {"groups": [{"name": GROUP, "rules": [r.to_prometheus() for r in RULES]}]}


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the longer expressions) as literal blocks, as people write them."""


_Dumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None))


def rules_yaml() -> str:
    """The content of `monitoring/alerts.yml`."""
    header = ("# Generated by `aicash monitor rules > monitoring/alerts.yml` from aicash/monitoring/alerts.py;\n"
              "# `aicash monitor check` evaluates the same rules. Do not edit by hand.\n")
    return header + yaml.dump(rules_document(), Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)


def evaluate(inputs: Inputs) -> list[AlertState]:
    """Every rule's state; while the database is unreachable (no status) the rules that read it are in error."""
    return [_not_evaluated(rule) if rule.needs_database and inputs.status is None else rule.evaluate(inputs)
            for rule in RULES]


def mail_parts(firing: list[AlertState]) -> tuple[str, str, str]:
    """Subject, HTML body and text body of the mail listing the firing rules."""
    import html

    names = ", ".join(s.rule for s in firing)
    subject = f"[aicash] {len(firing)} alert{'s' if len(firing) > 1 else ''} firing: {names}"
    items = "".join(f"<li><b>{html.escape(s.rule)}</b> ({s.state}): {html.escape(s.detail)}</li>" for s in firing)
    body = f'<html><body style="font-family:sans-serif"><h2>{html.escape(subject)}</h2><ul>{items}</ul></body></html>'
    text = subject + "\n\n" + "\n".join(f"- {s.rule} ({s.state}): {s.detail}" for s in firing) + "\n"
    return subject, body, text
