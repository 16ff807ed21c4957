"""Alert rules: the YAML Prometheus loads, and `aicash monitor check` firing on data made to trip each rule."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.parser import text_string_to_metric_families

from aicash.db.engine import session_scope
from aicash.db.models import DriftReport, TrainingRun
from aicash.monitoring import alerts, scrape
from aicash.monitoring import status as st
from aicash.monitoring.outcomes import LiveFigures
from aicash.monitoring.scrape import Histogram as Buckets
from aicash.settings import load_settings
from tests.support.monitoring import log_outcomes
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]
RULES_FILE = ROOT / "monitoring" / "alerts.yml"
SERVICE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.5)


# -- the YAML ---------------------------------------------------------------------------------------------------
def test_alerts_yml_is_the_rules_the_code_evaluates() -> None:
    assert RULES_FILE.read_text() == alerts.rules_yaml(), "regenerate: aicash monitor rules > monitoring/alerts.yml"


def test_each_rule_is_complete_and_uses_exported_metrics() -> None:
    document = yaml.safe_load(RULES_FILE.read_text())
    rules = document["groups"][0]["rules"]
    assert [r["alert"] for r in rules] == [
        "AicashPredictLatencyHigh", "AicashDriftDetected", "AicashTrainingFailed", "AicashLiveAccuracyLow",
        "AicashFeaturesStale", "AicashDatabaseUnreachable", "AicashLiveWinRateLow", "AicashLiveConfidenceLow"]
    service_source = (ROOT / "bentos" / "service.py").read_text()
    for rule in rules:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule
        assert rule["labels"]["severity"] in {"page", "warning"} and rule["labels"]["team"] == "ml"
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 40
        names = set(re.findall(r"\baicash_[a-z0-9_]+", rule["expr"]))
        assert names, rule["expr"]
        for name in names:
            family = re.sub(r"_(bucket|count|sum)$", "", name)
            exported_by_monitor = family in st.EXPORTED
            exported_by_service = f'"{family}"' in service_source
            assert exported_by_monitor or exported_by_service, f"{name} is exported by no code"
    latency = rules[0]
    assert 'endpoint="/predict"' in latency["expr"] and "histogram_quantile(0.95" in latency["expr"]
    assert "> 1\n" in latency["expr"]  # seconds: 1000 ms
    assert rules[3]["expr"] == ("aicash_live_directional_accuracy < on() group_left() aicash_min_accuracy\n"
                                "and aicash_live_trades >= 30")
    assert rules[4]["expr"] == "aicash_feature_age_seconds > aicash_feature_age_limit_seconds"


def test_service_metric_names_match_the_service() -> None:
    source = (ROOT / "bentos" / "service.py").read_text()
    for name in (scrape.LATENCY_METRIC, scrape.PREDICTIONS_METRIC, scrape.CACHE_HITS_METRIC,
                 scrape.FEATURE_AGE_METRIC, scrape.FEATURE_AGE_LIMIT_METRIC):
        assert f'"{name}"' in source


# -- latency: a Prometheus exposition served over HTTP ------------------------------------------------------------
class _Latencies:
    """A collector of fixed observations. Not a `Histogram`: importing Feast switches prometheus_client to its
    multiprocess value files, where same-named histograms made in one process add up across tests."""

    def __init__(self, observed: dict[str, list[float]]) -> None:
        self.observed = observed

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily("aicash_request_latency_seconds", "latency", labels=["endpoint"])
        for endpoint, values in self.observed.items():
            buckets = [(str(b), float(sum(v <= b for v in values))) for b in SERVICE_BUCKETS]
            family.add_metric([endpoint], [*buckets, ("+Inf", float(len(values)))], sum(values))
        yield family


def exposition(latencies: list[float], endpoint: str = "/predict") -> str:
    registry = CollectorRegistry()
    # another endpoint's slowness is not /predict's
    registry.register(_Latencies({endpoint: list(latencies), "/health": [9.0]}))
    return generate_latest(registry).decode()


class MetricsServer:
    def __init__(self) -> None:
        self.text = ""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                body = owner.text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def metrics_server() -> Iterator[MetricsServer]:
    server = MetricsServer()
    try:
        yield server
    finally:
        server.close()


def test_quantile_is_promql_histogram_quantile() -> None:
    buckets = Buckets(((0.1, 50.0), (0.2, 100.0), (float("inf"), 100.0)))
    assert buckets.quantile(0.95) == pytest.approx(0.19)
    assert buckets.quantile(0.5) == pytest.approx(0.1)
    assert Buckets(((1.0, 0.0), (2.5, 10.0), (float("inf"), 100.0))).quantile(0.95) == 2.5  # in +Inf: last bound
    assert Buckets(()).count == 0
    text = exposition([0.05] * 40 + [1.5] * 60)
    two = scrape.histogram([text, text], scrape.LATENCY_METRIC, {"endpoint": "/predict"})
    assert two.count == 200 and 1.0 < two.quantile(0.95) <= 2.5
    assert two.minus(scrape.histogram([text], scrape.LATENCY_METRIC, {"endpoint": "/predict"})).count == 100


def _latency_state(latencies: list[float]) -> alerts.AlertState:
    status = st.MonitorStatus(datetime.now(UTC), [], {}, None, [], 0.55)
    text = exposition(latencies)
    hist = scrape.histogram([text], scrape.LATENCY_METRIC, {"endpoint": "/predict"})
    return alerts.evaluate(alerts.Inputs(status, hist))[0]


def test_latency_rule_fires_above_one_second_only() -> None:
    assert _latency_state([0.02] * 90 + [1.8] * 10).firing  # p95 in the 1-2.5 s bucket
    quiet = _latency_state([0.02] * 97 + [1.8] * 3)
    assert not quiet.firing and "p95 " in quiet.detail
    assert not _latency_state([3.0] * 5).firing  # five requests are not judged


def test_check_scrapes_the_service(cli, engine, metrics_server) -> None:  # type: ignore[no-untyped-def]
    metrics_server.text = exposition([1.9] * 50)
    slow = cli("monitor", "check", "--metrics-url", metrics_server.url)
    assert slow.exit_code == 1, slow.output
    assert re.search(r"AicashPredictLatencyHigh\s.*firing", slow.stdout)

    metrics_server.text = exposition([0.01] * 50)
    fast = cli("monitor", "check", "--metrics-url", metrics_server.url)
    assert fast.exit_code == 0, fast.output
    assert "firing" not in fast.stdout


def test_sampled_latency_judges_only_new_requests(metrics_server) -> None:  # type: ignore[no-untyped-def]
    from aicash.cli.monitor import _latency

    metrics_server.text = exposition([5.0] * 100)  # slow in the past
    timer = threading.Timer(0.2, lambda: setattr(metrics_server, "text", exposition([5.0] * 100 + [0.01] * 100)))
    timer.start()
    hist, error = _latency([metrics_server.url], 0.6)
    timer.join()
    assert error is None and hist.count == 100 and hist.quantile(0.95) <= 0.01


def test_unreachable_or_bad_metrics_url(cli, engine) -> None:  # type: ignore[no-untyped-def]
    down = cli("monitor", "check", "--metrics-url", f"http://127.0.0.1:{free_port()}/metrics")
    assert down.exit_code == 1 and "error" in down.stdout and "could not read" in down.stdout
    bad = cli("monitor", "check", "--metrics-url", "ftp://x/metrics")
    assert bad.exit_code == 2 and "--metrics-url 'ftp://x/metrics' is not an http(s) URL" in bad.stderr


# -- database rules ----------------------------------------------------------------------------------------------
def _drift_report(engine, detected: bool, at: datetime) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        session.add(DriftReport(created_at=at, model_version="v1", window_start=at - timedelta(days=1),
                                window_end=at, current_rows=100, reference_rows=2000, drift_share_threshold=0.25,
                                drifted_share=0.5 if detected else 0.0, detected=detected, signal_drifted=False,
                                scores={}, location="/reports/x", emailed=detected))


def _states(engine) -> dict[str, alerts.AlertState]:  # type: ignore[no-untyped-def]
    status = st.collect_status(engine, load_settings())
    return {s.rule: s for s in alerts.evaluate(alerts.Inputs(status))}


def test_drift_rule_follows_the_latest_report(engine) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    assert not _states(engine)["AicashDriftDetected"].firing
    _drift_report(engine, True, now - timedelta(days=1))
    assert _states(engine)["AicashDriftDetected"].firing
    _drift_report(engine, False, now)
    state = _states(engine)["AicashDriftDetected"]
    assert not state.firing and "no drift" in state.detail


def _run(engine, status: str, ended: datetime, error: str | None = None) -> None:  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        session.add(TrainingRun(pipeline="lstm-training", status=status, params={}, error=error,
                                started_at=ended - timedelta(minutes=5), finished_at=ended))


def test_training_failure_rule_looks_at_the_last_day(engine) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    _run(engine, "failed", now - timedelta(days=2), "old failure")
    _run(engine, "succeeded", now - timedelta(hours=1))
    assert not _states(engine)["AicashTrainingFailed"].firing
    _run(engine, "failed", now - timedelta(hours=2), "CUDA out of memory")
    state = _states(engine)["AicashTrainingFailed"]
    assert state.firing and "CUDA out of memory" in state.detail and "old failure" not in state.detail


@pytest.mark.parametrize(("correct", "wrong", "hits", "fires"), [
    (40, 80, 40, True),  # both low
    (90, 30, 90, False),  # both fine
    (10, 110, 100, False),  # three-class 8 %, but the direction of 100 of 120 trades right: fine
    (110, 10, 20, True),  # three-class 92 %, but the direction of only 20 of 120 trades right: low
    (5, 35, 5, True),  # 40 trades are enough, though 40 decisions are fewer than 100
    (10, 15, 5, False),  # 25 trades: not judged
])
def test_live_accuracy_rule_judges_the_direction_of_traded_signals(  # type: ignore[no-untyped-def]
        engine, production, correct: int, wrong: int, hits: int, fires: bool) -> None:
    """MIN_ACCURACY applies to the directional accuracy of traded signals before costs, as at the training gate,
    over at least MIN_LIVE_TRADES trades; the three-class accuracy is not judged."""
    log_outcomes(engine, production, correct=correct, wrong=wrong, wins=hits,
                 start=datetime.now(UTC) - timedelta(days=2))
    state = _states(engine)["AicashLiveAccuracyLow"]
    assert state.firing is fires, state.detail
    trades = correct + wrong  # log_outcomes trades every decision
    if trades < alerts.MIN_LIVE_TRADES:
        assert "not judged" in state.detail
    else:
        assert f"directional accuracy {hits / trades:.3f} over {trades} trades (MIN_ACCURACY 0.550)" in state.detail


def _live_accuracy_state(figures: LiveFigures) -> alerts.AlertState:
    status = st.MonitorStatus(datetime.now(UTC), [("v1", 100.0)], {"v1": figures}, None, [], 0.55)
    return {s.rule: s for s in alerts.evaluate(alerts.Inputs(status))}["AicashLiveAccuracyLow"]


def test_live_accuracy_rule_ignores_the_three_class_accuracy() -> None:
    # decisions, correct, trades, wins, mean trade return, confidence sum, direction hits
    low_three_class = LiveFigures(200, 60, 50, 30, 1e-4, 140.0, direction_hits=40)  # 30 %, direction 80 %
    assert low_three_class.accuracy == 0.3 and low_three_class.directional_accuracy == 0.8
    assert not _live_accuracy_state(low_three_class).firing
    low_direction = LiveFigures(200, 180, 50, 10, -1e-4, 140.0, direction_hits=20)  # 90 %, direction 40 %
    state = _live_accuracy_state(low_direction)
    assert state.firing and "directional accuracy 0.400 over 50 trades" in state.detail
    untraded = _live_accuracy_state(LiveFigures(200, 20, 0, 0, None, 140.0))
    assert not untraded.firing and "v1: 0 trades (< 30, not judged)" in untraded.detail


@pytest.mark.parametrize(("trades", "wins", "fires"), [(120, 50, True), (120, 80, False), (20, 0, False)])
def test_live_win_rate_rule(engine, production, trades: int, wins: int, fires: bool) -> None:  # type: ignore[no-untyped-def]
    """Below MIN_LIVE_WIN_RATE (0.55, the guide's target) over at least 30 trades fires; fewer are not judged."""
    log_outcomes(engine, production, correct=trades // 2, wrong=trades - trades // 2, wins=wins, confidence=0.8,
                 start=datetime.now(UTC) - timedelta(days=2))
    states = _states(engine)
    state = states["AicashLiveWinRateLow"]
    assert state.firing is fires, state.detail
    assert ("not judged" in state.detail) is (trades < alerts.MIN_LIVE_TRADES)
    assert "MIN_LIVE_WIN_RATE 0.550" in state.detail
    assert not states["AicashLiveConfidenceLow"].firing


@pytest.mark.parametrize(("decisions", "confidence", "minimum", "fires"),
                         [(120, 0.6, None, True), (120, 0.8, None, False), (50, 0.3, None, False),
                          (120, 0.6, "0.5", False)])
def test_live_confidence_rule(engine, production, monkeypatch, decisions: int, confidence: float,  # type: ignore[no-untyped-def]
                              minimum: str | None, fires: bool) -> None:
    """An average confidence below MIN_LIVE_CONFIDENCE (0.70, the guide's target) over at least 100 decisions fires;
    the setting moves the line."""
    if minimum is not None:
        monkeypatch.setenv("MIN_LIVE_CONFIDENCE", minimum)
    log_outcomes(engine, production, correct=decisions, wrong=0, confidence=confidence,
                 start=datetime.now(UTC) - timedelta(days=2))
    state = _states(engine)["AicashLiveConfidenceLow"]
    assert state.firing is fires, state.detail
    if decisions < alerts.MIN_LIVE_DECISIONS:
        assert "not judged" in state.detail
    else:
        assert f"average confidence {confidence:.3f} over {decisions} decisions" in state.detail


def test_live_rules_are_quiet_without_a_serving_model(engine) -> None:  # type: ignore[no-untyped-def]
    states = _states(engine)
    for rule in ("AicashLiveAccuracyLow", "AicashLiveWinRateLow", "AicashLiveConfidenceLow"):
        assert not states[rule].firing and states[rule].detail == "no model is serving"


def test_check_mails_what_fires_and_exports_gauges(cli, engine, production, mail_env, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _run(engine, "failed", datetime.now(UTC) - timedelta(minutes=10), "disk full")
    log_outcomes(engine, production, correct=30, wrong=90, start=datetime.now(UTC) - timedelta(days=1))
    textfile = tmp_path / "textfile" / "aicash.prom"

    result = cli("monitor", "check", "--no-latency", "--email", "--textfile", str(textfile))

    assert result.exit_code == 1, result.output
    assert [m["Subject"] for m in mail_env.messages] == [
        "[aicash] 4 alerts firing: AicashTrainingFailed, AicashLiveAccuracyLow, AicashLiveWinRateLow, "
        "AicashLiveConfidenceLow"]  # 30 of 120 right, 30 of 120 trades won, confidence 0.6
    assert "disk full" in mail_env.messages[0].get_body(("plain",)).get_content()
    families = {f.name: f for f in text_string_to_metric_families(textfile.read_text())}
    accuracy = families[st.LIVE_ACCURACY].samples[0]
    assert accuracy.labels == {"model_version": production} and accuracy.value == pytest.approx(0.25)
    assert "three-class" in families[st.LIVE_ACCURACY].documentation
    directional = families[st.LIVE_DIRECTIONAL_ACCURACY].samples[0]
    assert directional.labels == {"model_version": production} and directional.value == pytest.approx(0.25)
    assert "directional accuracy of traded signals" in families[st.MIN_ACCURACY].documentation
    assert families[st.TRAINING_FAILED].samples[0].value == 1
    assert families[st.MIN_ACCURACY].samples[0].value == pytest.approx(0.55)
    assert families[st.LIVE_DECISIONS].samples[0].value == 120
    confidence = families[st.LIVE_CONFIDENCE].samples[0]
    assert confidence.labels == {"model_version": production} and confidence.value == pytest.approx(0.6)
    assert families[st.LIVE_WIN_RATE].samples[0].value == pytest.approx(0.25)
    assert families[st.MIN_LIVE_WIN_RATE].samples[0].value == pytest.approx(0.55)
    assert families[st.MIN_LIVE_CONFIDENCE].samples[0].value == pytest.approx(0.70)


def test_quiet_check_exits_0(cli, engine, production) -> None:  # type: ignore[no-untyped-def]
    log_outcomes(engine, production, correct=90, wrong=30, confidence=0.8, start=datetime.now(UTC) - timedelta(days=1))
    result = cli("monitor", "check", "--no-latency")
    assert result.exit_code == 0, result.output
    assert "firing" not in result.stdout and "directional accuracy 0.750 over 120" in result.stdout  # wrapped


def test_metrics_endpoint_rebuilds_on_every_scrape(engine, production) -> None:  # type: ignore[no-untyped-def]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(st.StatusCollector(engine, load_settings()))
    before = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert before[st.DRIFT_DETECTED].samples[0].value == 0
    _drift_report(engine, True, datetime.now(UTC))
    after = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert after[st.DRIFT_DETECTED].samples[0].value == 1
    assert after[st.DRIFT_SHARE].samples[0].value == 0.5


def test_metrics_command_needs_one_output(cli, engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert cli("monitor", "metrics").exit_code == 2
    written = cli("monitor", "metrics", "--textfile", str(tmp_path / "m.prom"))
    assert written.exit_code == 0 and "aicash_drift_detected 0.0" in (tmp_path / "m.prom").read_text()


# -- feature age: the service's gauges ----------------------------------------------------------------------------
def feature_age_exposition(ages: dict[tuple[str, str], tuple[float, float]]) -> str:
    """What the service's /metrics says about feature ages: (symbol, timeframe) -> (age, limit) in seconds."""
    lines = ["# TYPE aicash_feature_age_seconds gauge", "# TYPE aicash_feature_age_limit_seconds gauge"]
    for (symbol, timeframe), (age, limit) in ages.items():
        labels = f'{{symbol="{symbol}",timeframe="{timeframe}"}}'
        lines += [f"aicash_feature_age_seconds{labels} {age}", f"aicash_feature_age_limit_seconds{labels} {limit}"]
    return "\n".join(lines) + "\n"


def _stale_state(*texts: str) -> alerts.AlertState:
    status = st.MonitorStatus(datetime.now(UTC), [], {}, None, [], 0.55)
    states = alerts.evaluate(alerts.Inputs(status, feature_ages=scrape.feature_ages(texts)))
    return {s.rule: s for s in states}["AicashFeaturesStale"]


def test_features_stale_rule_compares_each_series_age_with_its_limit() -> None:
    fresh = feature_age_exposition({("EURUSD", "1h"): (11100.0, 11100.0), ("BTCUSD", "1m"): (10.0, 480.0)})
    quiet = _stale_state(fresh)
    assert not quiet.firing and quiet.detail.startswith("fresh: ") and "EURUSD 1h: 11100 s old" in quiet.detail
    stale = _stale_state(fresh, feature_age_exposition({("EURUSD", "1h"): (11101.0, 11100.0)}))  # another replica
    assert stale.firing and stale.detail == "stale: EURUSD 1h: 11101 s old (limit 11100 s)"
    assert not _stale_state("").firing  # no series read yet
    status = st.MonitorStatus(datetime.now(UTC), [], {}, None, [], 0.55)
    unchecked = {s.rule: s for s in alerts.evaluate(alerts.Inputs(status))}["AicashFeaturesStale"]
    assert not unchecked.firing and "not checked" in unchecked.detail


def test_check_fires_on_a_stale_series(cli, engine, metrics_server) -> None:  # type: ignore[no-untyped-def]
    metrics_server.text = exposition([0.01] * 50) + feature_age_exposition({("EURUSD", "1h"): (9e7, 11100.0)})
    result = cli("monitor", "check", "--metrics-url", metrics_server.url)
    assert result.exit_code == 1, result.output
    assert re.search(r"AicashFeaturesStale\s.*firing", result.stdout)
    metrics_server.text = exposition([0.01] * 50) + feature_age_exposition({("EURUSD", "1h"): (60.0, 11100.0)})
    assert cli("monitor", "check", "--metrics-url", metrics_server.url).exit_code == 0
