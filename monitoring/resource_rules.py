"""Prometheus alerting rules on the platform's resources in its namespace: memory near the container limit,
restarts and OOM kills, CPU throttling, and a scheduled job that has not succeeded within twice its schedule.

They read what the monitoring stack the Pulumi program installs scrapes (kube-prometheus-stack:
kube-state-metrics and the kubelet's cAdvisor), not the service's own metrics, so `aicash monitor check` does not
evaluate them; `promtool test rules monitoring/tests/resource-alerts.test.yml` unit-tests each one.
`monitoring/resource-alerts.yml` is `python -m monitoring.resource_rules` for the namespace `aicash` (a test keeps it
current); `infra/observability.py` renders them for the stack's namespace.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import yaml

GROUP = "aicash-resources"
MEMORY_LIMIT_SHARE = 0.9  # working set over the container's memory limit
THROTTLED_SHARE = 0.25  # share of CFS periods throttled
RESTART_WINDOW = "15m"


@dataclass(frozen=True)
class ResourceRule:
    """One alerting rule; `expr` is a template with `{ns}` for the namespace's label matcher."""

    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str

    def to_prometheus(self, namespace: str) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr.format(ns=f'namespace="{namespace}"'),
            "for": self.for_,
            "labels": {"severity": self.severity, "namespace": namespace},
            "annotations": {"summary": self.summary, "description": self.description},
        }


RULES: tuple[ResourceRule, ...] = (
    ResourceRule(
        "AicashMemoryNearLimit",
        "max by (namespace, pod, container) (container_memory_working_set_bytes{{{ns}, container!=\"\", "
        "container!=\"POD\"}})\n/ on (namespace, pod, container)\nmax by (namespace, pod, container) "
        "(kube_pod_container_resource_limits{{{ns}, resource=\"memory\"}})\n> " + str(MEMORY_LIMIT_SHARE),
        "5m", "warning",
        "A container is near its memory limit",
        "{{ $labels.pod }}/{{ $labels.container }} uses {{ $value | humanizePercentage }} of its memory limit: the "
        "next allocation may be an OOM kill. Check the soak figures (make soak), then raise the limit in the stack.",
    ),
    ResourceRule(
        "AicashContainerRestarting",
        "increase(kube_pod_container_status_restarts_total{{{ns}}}[" + RESTART_WINDOW + "]) > 0",
        "0m", "warning",
        "A container restarted",
        "{{ $labels.pod }}/{{ $labels.container }} restarted in the last " + RESTART_WINDOW + ": "
        "`kubectl -n {{ $labels.namespace }} describe pod {{ $labels.pod }}` says why (probe, OOM, exit code).",
    ),
    ResourceRule(
        "AicashContainerOOMKilled",
        "max by (namespace, pod, container) (kube_pod_container_status_last_terminated_reason{{{ns}, "
        "reason=\"OOMKilled\"}}) == 1\nand on (namespace, pod, container)\nincrease("
        "kube_pod_container_status_restarts_total{{{ns}}}[" + RESTART_WINDOW + "]) > 0",
        "0m", "page",
        "A container was OOM-killed",
        "{{ $labels.pod }}/{{ $labels.container }} was killed for exceeding its memory limit and restarted. Raise "
        "the limit in the stack or find the growth (make soak).",
    ),
    ResourceRule(
        "AicashCpuThrottled",
        "sum by (namespace, pod, container) (rate(container_cpu_cfs_throttled_periods_total{{{ns}, "
        "container!=\"\"}}[5m]))\n/ on (namespace, pod, container)\nsum by (namespace, pod, container) "
        "(rate(container_cpu_cfs_periods_total{{{ns}, container!=\"\"}}[5m]))\n> " + str(THROTTLED_SHARE),
        "15m", "warning",
        "A container's CPU is throttled",
        "{{ $labels.pod }}/{{ $labels.container }} was throttled in {{ $value | humanizePercentage }} of its CPU "
        "periods for 15 minutes: latency follows. Raise the CPU limit or let the autoscaler add replicas sooner.",
    ),
    ResourceRule(
        "AicashScheduledJobLate",
        # The schedule's period is the gap between the last and the next scheduled time; a job that never
        # succeeded is late once it has been scheduled twice that long after its creation. Suspended jobs are not.
        "(\n  time() - kube_cronjob_status_last_successful_time{{{ns}}}\n"
        "  > 2 * (kube_cronjob_next_schedule_time{{{ns}}} - kube_cronjob_status_last_schedule_time{{{ns}}})\n"
        "or\n  (time() - kube_cronjob_created{{{ns}}}\n   > 2 * (kube_cronjob_next_schedule_time{{{ns}}}"
        " - kube_cronjob_status_last_schedule_time{{{ns}}}))\n"
        "  unless on (namespace, cronjob) kube_cronjob_status_last_successful_time{{{ns}}}\n)\n"
        "unless on (namespace, cronjob) kube_cronjob_spec_suspend{{{ns}}} == 1",
        "0m", "warning",
        "A scheduled job has not succeeded within twice its schedule",
        "CronJob {{ $labels.cronjob }} has not succeeded for {{ $value | humanizeDuration }}, more than twice its "
        "schedule's period. `kubectl -n {{ $labels.namespace }} get jobs` and the last job's logs say why.",
    ),
)


def rules(namespace: str) -> dict[str, Any]:
    """The rules as a Prometheus rule file (`groups:`) for `namespace`."""
    return {"groups": [{"name": GROUP, "rules": [rule.to_prometheus(namespace) for rule in RULES]}]}


class _Dumper(yaml.SafeDumper):
    """Multi-line expressions as literal blocks, as people write PromQL."""


_Dumper.add_representer(str, lambda dumper, value: dumper.represent_scalar(
    "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None))


def rules_yaml(namespace: str = "aicash") -> str:
    header = (f"# Generated by `python -m monitoring.resource_rules` (namespace {namespace}): do not edit by hand.\n"
              "# Unit tests: promtool test rules monitoring/tests/resource-alerts.test.yml\n")
    return header + yaml.dump(rules(namespace), Dumper=_Dumper, sort_keys=False, width=120)


if __name__ == "__main__":
    sys.stdout.write(rules_yaml(*sys.argv[1:2]))
