"""The Grafana dashboard as code: the committed JSON is what `monitoring.dashboard` builds, and every panel reads
the Prometheus datasource variable with one query per target (its queries run on a real Prometheus in
test_prometheus_live.py)."""

from __future__ import annotations

import json

from monitoring import dashboard


def test_the_committed_dashboard_is_current() -> None:
    assert dashboard.DASHBOARD_FILE.read_text() == dashboard.dashboard_json(), (
        "regenerate it: python -m monitoring.dashboard > monitoring/dashboards/aicash.json")


def test_panels_read_the_prometheus_variable_and_cover_what_the_team_watches() -> None:
    board = dashboard.load()
    assert board["uid"] == dashboard.UID and board["templating"]["list"][0]["name"] == "datasource"
    panels = [p for p in board["panels"] if p["type"] != "row"]
    targets = [t for p in panels for t in p["targets"]]
    assert len(targets) == len(dashboard.queries())
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs) and all(refs), panel["title"]
    text = json.dumps(board)
    for metric in ("bentoml_service_request_total", "bentoml_service_request_duration_seconds_bucket",
                   "aicash_predictions_total", "aicash_prediction_cache_hits_total", "aicash_prediction_log_pending",
                   "aicash_feature_age_seconds", "aicash_live_accuracy", "aicash_live_directional_accuracy",
                   "aicash_drift_share", "aicash_training_runs_failed", "process_resident_memory_bytes"):
        assert metric in text, metric
