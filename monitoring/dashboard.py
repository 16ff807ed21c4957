"""The aicash Grafana dashboard as code (grafana-foundation-sdk): traffic, latency and errors per endpoint, the
model's answers and the canary split, the cache, the prediction log, feature ages, live quality, drift, training
runs and the workers' resources.

`python -m monitoring.dashboard > monitoring/dashboards/aicash.json` writes it (a test keeps the file current); the
Pulumi program ships the file to Grafana's dashboard sidecar (`infra/observability.py`), and a test evaluates every
query on a real Prometheus scraping a running service (`tests/monitoring/test_prometheus_live.py`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from string import ascii_uppercase
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the SDK is a development tool (the `dev` extra): the committed JSON is what ships
    from grafana_foundation_sdk.builders.dashboard import Dashboard
    from grafana_foundation_sdk.builders.stat import Panel as Stat
    from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries

UID = "aicash-overview"
DASHBOARD_FILE = Path(__file__).resolve().parent / "dashboards" / "aicash.json"
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    title: str
    unit: str
    queries: tuple[Query, ...]
    stat: bool = False
    description: str = ""


def _quantiles(metric: str, by: str) -> tuple[Query, ...]:
    return tuple(Query(f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket[{RATE}])))",
                       f"p{round(q * 100)} {{{{{by}}}}}") for q in (0.5, 0.95, 0.99))


ROWS: tuple[tuple[str, tuple[PanelSpec, ...]], ...] = (
    ("Traffic", (
        PanelSpec("Requests per endpoint", "reqps", (
            Query(f"sum by (endpoint) (rate(bentoml_service_request_total[{RATE}]))", "{{endpoint}}"),)),
        PanelSpec("Latency per endpoint (p50, p95, p99)", "s",
                  _quantiles("bentoml_service_request_duration_seconds", "endpoint"),
                  description="Targets: /predict p95 < 200 ms, /health < 50 ms, /weights < 100 ms."),
        PanelSpec("Errors by status", "reqps", (
            Query('sum by (http_response_code) (rate(bentoml_service_request_total{http_response_code=~"4..|5.."}'
                  f"[{RATE}]))", "{{http_response_code}}"),
            Query(f"sum by (reason) (rate(aicash_rejected_requests_total[{RATE}]))", "refused: {{reason}}"))),
    )),
    ("Model", (
        PanelSpec("Predictions by signal and version", "reqps", (
            Query(f"sum by (signal, model_version) (rate(aicash_predictions_total[{RATE}]))",
                  "{{signal}} {{model_version}}"),)),
        PanelSpec("Canary split (share of predictions)", "percentunit", (
            Query(f"sum by (model_version) (rate(aicash_predictions_total[{RATE}])) / ignoring (model_version) "
                  f"group_left () sum(rate(aicash_predictions_total[{RATE}]))", "{{model_version}}"),)),
        PanelSpec("Cache hits (share of predictions)", "percentunit", (
            Query(f"sum(rate(aicash_prediction_cache_hits_total[{RATE}])) / sum(rate(aicash_predictions_total"
                  f"[{RATE}]))", "cache hits"),)),
    )),
    ("Data", (
        PanelSpec("Prediction log backlog", "short", (
            Query("sum(aicash_prediction_log_pending)", "queued rows"),
            Query("sum(increase(aicash_prediction_log_dead_letters_total[1h]))", "dead letters (1 h)"))),
        PanelSpec("Feature age per series", "s", (
            Query("max by (symbol, timeframe) (aicash_feature_age_seconds)", "{{symbol}} {{timeframe}}"),
            Query("max by (symbol, timeframe) (aicash_feature_age_limit_seconds)", "limit {{symbol}} {{timeframe}}")),
                  description="AicashFeaturesStale fires when the age passes the limit."),
    )),
    ("Live quality (aicash monitor metrics)", (
        PanelSpec("Live accuracy, win rate and confidence (7 days)", "percentunit", (
            Query("aicash_live_directional_accuracy", "directional accuracy {{model_version}}"),
            Query("aicash_live_accuracy", "three-class accuracy {{model_version}}"),
            Query("aicash_live_win_rate", "win rate {{model_version}}"),
            Query("aicash_live_confidence", "confidence {{model_version}}"),
            Query("aicash_min_accuracy", "MIN_ACCURACY"),
            Query("aicash_min_live_win_rate", "MIN_LIVE_WIN_RATE"),
            Query("aicash_min_live_confidence", "MIN_LIVE_CONFIDENCE")),
                  description="AicashLiveAccuracyLow compares the directional accuracy of traded signals (before "
                              "costs) with MIN_ACCURACY, as the training gate does; the three-class accuracy is shown, "
                              "not judged."),
        PanelSpec("Drift", "percentunit", (
            Query("aicash_drift_share", "drifted share of features"),
            Query("aicash_drift_detected", "drift detected"))),
        PanelSpec("Training runs failed (24 h)", "short", (
            Query("aicash_training_runs_failed", "failed runs"),), stat=True),
        PanelSpec("Database up", "short", (Query("aicash_database_up", "up"),), stat=True),
    )),
    ("Resources", (
        PanelSpec("Resident memory per worker", "bytes", (
            Query("process_resident_memory_bytes", "{{pod}} pid {{pid}}"),)),
        PanelSpec("CPU per worker", "percentunit", (
            Query(f"rate(process_cpu_seconds_total[{RATE}])", "{{pod}} pid {{pid}}"),)),
        PanelSpec("GC collections per worker", "ops", (
            Query(f"sum by (pid, generation) (rate(python_gc_collections_total[{RATE}]))",
                  "pid {{pid}} gen {{generation}}"),)),
    )),
)


def queries() -> list[Query]:
    """Every query of the dashboard, in order."""
    return [query for _, panels in ROWS for panel in panels for query in panel.queries]


def _panel(spec: PanelSpec) -> Stat | Timeseries:
    from grafana_foundation_sdk.builders.prometheus import Dataquery
    from grafana_foundation_sdk.builders.stat import Panel as Stat
    from grafana_foundation_sdk.builders.timeseries import Panel as Timeseries
    from grafana_foundation_sdk.models.dashboard import DataSourceRef

    datasource = DataSourceRef(type_val="prometheus", uid="${datasource}")
    panel = (Stat() if spec.stat else Timeseries()).title(spec.title).unit(spec.unit).datasource(datasource)
    if spec.description:
        panel = panel.description(spec.description)
    for ref, query in zip(ascii_uppercase, spec.queries, strict=False):
        panel = panel.with_target(Dataquery().ref_id(ref).expr(query.expr).legend_format(query.legend)
                                  .datasource(datasource))
    return panel


def build() -> Dashboard:
    from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, Row

    board = (
        Dashboard("aicash: signal service")
        .uid(UID)
        .tags(["aicash", "generated"])
        .refresh("30s")
        .time("now-6h", "now")
        .with_variable(DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    )
    for title, panels in ROWS:
        board = board.with_row(Row(title))
        for spec in panels:
            board = board.with_panel(_panel(spec))
    return board


def dashboard_json() -> str:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    return JSONEncoder(sort_keys=True, indent=2).encode(build().build()) + "\n"


def load() -> dict[str, Any]:
    """The committed dashboard (what the Pulumi program ships)."""
    return json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))


if __name__ == "__main__":
    sys.stdout.write(dashboard_json())
