"""`Observability`: the monitoring stack the platform's alert rules read, kube-prometheus-stack from a pinned Helm
chart (Prometheus, Alertmanager, Grafana, kube-state-metrics, node-exporter, and the kubelet's cAdvisor scraped).

- Every replica of the inference service is scraped (`/metrics`, a pod-discovery job in the platform namespace),
  and the monitor exporter (`aicash monitor metrics --port 9108`, a Deployment here: live accuracy, win rate and
  confidence, drift, failed training runs, the database's reachability, rebuilt from the database on each scrape).
- The Grafana dashboard `monitoring/dashboards/aicash.json` (`monitoring.dashboard`) goes to Grafana's dashboard
  sidecar as a ConfigMap labelled `grafana_dashboard: "1"`.
- The aicash rules (`monitoring/alerts.yml`) and the resource rules (`monitoring.resource_rules`, rendered for the
  stack's namespace: memory near the limit, restarts and OOM kills, CPU throttling, late CronJobs) become
  PrometheusRules through the chart's `additionalPrometheusRulesMap`.

Turned off with `aicash:observability: {install: false}` where the cluster already runs one: the rules are then
in the ConfigMap `aicash-alert-rules` (`infra/monitoring.py`) to load into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from infra import kube
from infra.component import Component
from infra.config import ObservabilityConfig, Resources
from infra.inference import NAME as INFERENCE
from infra.inference import PORT as INFERENCE_PORT
from infra.monitoring import ALERT_RULES_FILE
from monitoring.dashboard import DASHBOARD_FILE
from monitoring.resource_rules import rules as resource_rules

KUBE_PROMETHEUS_STACK_CHART = ("kube-prometheus-stack", "77.5.0", "https://prometheus-community.github.io/helm-charts")
SCRAPE_JOB = "aicash-inference"
EXPORTER = "aicash-monitor-exporter"
EXPORTER_PORT = 9108
EXPORTER_SCRAPE_JOB = "aicash-monitor"
DASHBOARD_CONFIGMAP = "aicash-grafana-dashboard"


@dataclass(frozen=True)
class ObservabilityArgs:
    """The platform namespace (scraped, and the resource rules' scope), the platform image, the stack's settings,
    the rules and dashboard files."""

    namespace: str
    image: str  # the platform image, for the monitor exporter
    config: ObservabilityConfig = field(default_factory=ObservabilityConfig)
    alert_rules_file: Path = ALERT_RULES_FILE
    dashboard_file: Path = DASHBOARD_FILE


def pod_scrape_job(job: str, namespace: str, name: str, port: int) -> dict[str, Any]:
    """/metrics of every pod named `name` (label app.kubernetes.io/name) on `port`, labelled with the pod: each
    inference replica has its own histograms."""
    name_label = "__meta_kubernetes_pod_label_" + _label_name("app.kubernetes.io/name")
    return {
        "job_name": job,
        "metrics_path": "/metrics",
        "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
        "relabel_configs": [
            {"source_labels": [name_label], "regex": name, "action": "keep"},
            {"source_labels": ["__meta_kubernetes_pod_container_port_number"], "regex": str(port),
             "action": "keep"},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        ],
    }


def _label_name(label: str) -> str:
    """Prometheus' form of a Kubernetes label in discovery metadata: every character outside [a-zA-Z0-9_] as _."""
    return "".join(c if c.isalnum() or c == "_" else "_" for c in label)


def chart_values(args: ObservabilityArgs) -> dict[str, Any]:
    """The chart's values (pure, so tests can read them)."""
    cfg = args.config
    aicash_rules = yaml.safe_load(args.alert_rules_file.read_text(encoding="utf-8"))
    return {
        "kubeStateMetrics": {"enabled": True},
        "nodeExporter": {"enabled": True},
        "kubelet": {"enabled": True, "serviceMonitor": {"cAdvisor": True}},
        "grafana": {"enabled": cfg.grafana, "sidecar": {"dashboards": {"enabled": True, "searchNamespace": "ALL"}}},
        "prometheus": {
            "prometheusSpec": {
                "retention": cfg.retention,
                "ruleSelectorNilUsesHelmValues": False,
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "additionalScrapeConfigs": [
                    pod_scrape_job(SCRAPE_JOB, args.namespace, INFERENCE, INFERENCE_PORT),
                    pod_scrape_job(EXPORTER_SCRAPE_JOB, args.namespace, EXPORTER, EXPORTER_PORT),
                ],
            }
        },
        "additionalPrometheusRulesMap": {
            "aicash": aicash_rules,
            "aicash-resources": resource_rules(args.namespace),
        },
    }


def exporter_spec(image: str) -> dict[str, Any]:
    """One replica of `aicash monitor metrics --port`: its gauges are rebuilt from the database on each scrape."""
    command = ["aicash", "monitor", "metrics", "--port", str(EXPORTER_PORT)]
    step = kube.container(
        "exporter", image, Resources("100m", "256Mi", "500m", "768Mi"), command=command,
        ports=[{"name": "metrics", "containerPort": EXPORTER_PORT}], env_from=kube.platform_env(),
        liveness=kube.tcp_probe(EXPORTER_PORT, period=30), readiness=kube.tcp_probe(EXPORTER_PORT),
        mounts=[kube.home_mount()],
    )
    pod = kube.pod_spec([step], run_as_user=kube.PLATFORM_UID, volumes=[kube.home_volume()])
    return {
        "replicas": 1,
        "selector": {"matchLabels": kube.selector(EXPORTER)},
        "template": {"metadata": {"labels": kube.labels(EXPORTER, "monitoring", client=True)}, "spec": pod},
    }


class Observability(Component):
    """kube-prometheus-stack in its own namespace, scraping the platform and alerting on its rules."""

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicash:observability:Observability", name, opts)
        chart, version, repo = KUBE_PROMETHEUS_STACK_CHART
        k8s.helm.v3.Release(
            f"{name}-{chart}",
            name=chart,
            chart=chart,
            version=version,
            repository_opts={"repo": repo},
            namespace=args.config.namespace,
            create_namespace=True,
            values=chart_values(args),
            opts=self.child_opts(),
        )
        k8s.apps.v1.Deployment(
            f"{name}-{EXPORTER}",
            metadata=kube.meta(EXPORTER, args.namespace, "monitoring", client=True),
            spec=exporter_spec(args.image),
            opts=self.child_opts(),
        )
        k8s.core.v1.ConfigMap(
            f"{name}-{DASHBOARD_CONFIGMAP}",
            metadata={"name": DASHBOARD_CONFIGMAP, "namespace": args.config.namespace,
                      "labels": {**kube.labels(DASHBOARD_CONFIGMAP, "monitoring"), "grafana_dashboard": "1"}},
            data={"aicash.json": args.dashboard_file.read_text(encoding="utf-8")},
            opts=self.child_opts(),
        )
        self.namespace = args.config.namespace
        self.register_outputs({"namespace": args.config.namespace, "chart": f"{chart} {version}"})
