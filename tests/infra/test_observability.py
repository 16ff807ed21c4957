"""The monitoring stack the Pulumi program installs: kube-prometheus-stack from a pinned chart, scraping every
inference replica, kube-state-metrics and cAdvisor (the series the resource rules read), loaded with the aicash
rules and the resource rules for the stack's namespace; and none of it where a stack turns it off."""

from __future__ import annotations

import json
from typing import Any

import yaml

from infra.monitoring import ALERT_RULES_FILE
from infra.observability import (
    DASHBOARD_CONFIGMAP,
    EXPORTER,
    EXPORTER_SCRAPE_JOB,
    KUBE_PROMETHEUS_STACK_CHART,
    SCRAPE_JOB,
)
from infra.render import RecordingMocks, manifests, run_program, unwrap
from monitoring import dashboard
from monitoring.resource_rules import rules as resource_rules
from tests.support.infra import find

RELEASE = "kubernetes:helm.sh/v3:Release"
CHART = KUBE_PROMETHEUS_STACK_CHART[0]


def _release(program: RecordingMocks) -> dict[str, Any]:
    [release] = [r.inputs for r in program.records if r.typ == RELEASE and r.inputs.get("chart") == CHART]
    return unwrap(release)


def test_kube_prometheus_stack_from_a_pinned_chart(program: RecordingMocks) -> None:
    release = _release(program)
    chart, version, repo = KUBE_PROMETHEUS_STACK_CHART
    assert (release["chart"], release["version"], release["repositoryOpts"]["repo"]) == (chart, version, repo)
    assert release["namespace"] == "monitoring" and release["createNamespace"] is True


def test_it_scrapes_what_the_rules_and_the_dashboard_read(program: RecordingMocks) -> None:
    values = _release(program)["values"]
    assert values["kubeStateMetrics"]["enabled"] and values["kubelet"]["serviceMonitor"]["cAdvisor"]
    jobs = {job["job_name"]: job for job in values["prometheus"]["prometheusSpec"]["additionalScrapeConfigs"]}
    assert set(jobs) == {SCRAPE_JOB, EXPORTER_SCRAPE_JOB}
    for job, (name, port) in ((SCRAPE_JOB, ("aicash-inference", "3000")), (EXPORTER_SCRAPE_JOB, (EXPORTER, "9108"))):
        assert jobs[job]["kubernetes_sd_configs"][0]["namespaces"]["names"] == ["aicash"]
        relabel = jobs[job]["relabel_configs"]
        keep = {tuple(r["source_labels"]): r["regex"] for r in relabel if r.get("action") == "keep"}
        assert keep == {("__meta_kubernetes_pod_label_app_kubernetes_io_name",): name,
                        ("__meta_kubernetes_pod_container_port_number",): port}


def test_the_monitor_exporter_runs_and_prometheus_may_reach_it(objects: list[dict[str, Any]]) -> None:
    exporter = find(objects, "Deployment", EXPORTER, "aicash")
    [container] = exporter["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["aicash", "monitor", "metrics", "--port", "9108"]
    assert container["ports"] == [{"name": "metrics", "containerPort": 9108}]
    policy = find(objects, "NetworkPolicy", "monitor-exporter-from-prometheus", "aicash")["spec"]
    assert policy["ingress"] == [{"from": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "monitoring"}}}], "ports": [{"protocol": "TCP", "port": 9108}]}]


def test_the_dashboard_goes_to_grafanas_sidecar(program: RecordingMocks, objects: list[dict[str, Any]]) -> None:
    config_map = find(objects, "ConfigMap", DASHBOARD_CONFIGMAP, "monitoring")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["aicash.json"]) == dashboard.load()
    assert _release(program)["values"]["grafana"]["sidecar"]["dashboards"]["enabled"] is True


def test_it_alerts_on_the_aicash_rules_and_the_resource_rules(program: RecordingMocks) -> None:
    rules = _release(program)["values"]["additionalPrometheusRulesMap"]
    assert rules["aicash"] == yaml.safe_load(ALERT_RULES_FILE.read_text())
    assert rules["aicash-resources"] == resource_rules("aicash")


def test_the_resource_rules_follow_the_stack_namespace() -> None:
    program = run_program("dev", overrides={"namespace": "trading"})
    values = _release(program)["values"]
    groups = values["additionalPrometheusRulesMap"]["aicash-resources"]["groups"]
    exprs = [rule["expr"] for group in groups for rule in group["rules"]]
    assert all('namespace="trading"' in e and 'namespace="aicash"' not in e for e in exprs)
    scrape = values["prometheus"]["prometheusSpec"]["additionalScrapeConfigs"][0]
    assert scrape["kubernetes_sd_configs"][0]["namespaces"]["names"] == ["trading"]


def test_turned_off_there_is_no_release_and_no_scrape_opening() -> None:
    program = run_program("prod", overrides={"observability": json.dumps({"install": False})})
    assert not [r for r in program.records if r.typ == RELEASE and r.inputs.get("chart") == CHART]
    names = {o["metadata"]["name"] for o in manifests(program) if o["kind"] == "NetworkPolicy"}
    assert "inference-from-prometheus" not in names and "inference-from-health-check" in names
