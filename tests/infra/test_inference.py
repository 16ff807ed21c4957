"""The Bento service: HPA on the Deployment within the configured bounds, probes, PDB, TLS Ingress."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import ConfigError, InferenceConfig
from infra.inference import NAME, PORT
from infra.policy.rules import pod_spec
from infra.render import manifests, run_program
from tests.support.infra import find

BOUNDS = {"dev": (1, 3), "prod": (2, 8)}


def test_hpa_targets_the_bento_deployment_with_the_stack_bounds(objects: list[dict[str, Any]], stack: str) -> None:
    hpa = find(objects, "HorizontalPodAutoscaler", NAME, "aicash")["spec"]
    deployment = find(objects, "Deployment", NAME, "aicash")
    target = {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"]}
    assert hpa["scaleTargetRef"] == target
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == BOUNDS[stack]
    stack_file = yaml.safe_load(Path(f"Pulumi.{stack}.yaml").read_text())["config"]["aicash:inference"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (stack_file["minReplicas"], stack_file["maxReplicas"])
    [metric] = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["averageUtilization"] == 70
    assert "replicas" not in deployment["spec"]  # the HPA owns the count


def test_configured_bounds_reach_the_hpa() -> None:
    mocks = run_program("dev", overrides={"inference": json.dumps({"minReplicas": 4, "maxReplicas": 11})})
    hpa = find(manifests(mocks), "HorizontalPodAutoscaler", NAME, "aicash")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (4, 11)


@pytest.mark.parametrize(("low", "high"), [(0, 3), (5, 4)])
def test_bad_bounds_are_refused(low: int, high: int) -> None:
    with pytest.raises(ConfigError, match="minReplicas"):
        InferenceConfig(min_replicas=low, max_replicas=high)


def test_bento_container_serves_on_3000_with_bentoml_probes(objects: list[dict[str, Any]], stack: str) -> None:
    pod = pod_spec(find(objects, "Deployment", NAME, "aicash"))
    [bento] = pod["containers"]
    image = {"dev": "localhost:5001/aicash-signal:0.1.0", "prod": "ghcr.io/aicash/aicash-signal:0.1.0"}[stack]
    assert bento["image"] == image
    assert bento["ports"] == [{"name": "http", "containerPort": PORT}] and PORT == 3000
    assert bento["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert bento["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert pod["securityContext"]["runAsUser"] == 1034  # the bentoml user of `bentoml containerize`
    service = find(objects, "Service", NAME, "aicash")["spec"]
    assert service["ports"][0]["port"] == PORT and service["selector"].items() <= pod_labels(objects).items()


def pod_labels(objects: list[dict[str, Any]]) -> dict[str, str]:
    return find(objects, "Deployment", NAME, "aicash")["spec"]["template"]["metadata"]["labels"]


def test_pdb_covers_the_bento_pods(objects: list[dict[str, Any]]) -> None:
    pdb = find(objects, "PodDisruptionBudget", NAME, "aicash")["spec"]
    assert pdb["maxUnavailable"] == 1
    assert pdb["selector"]["matchLabels"].items() <= pod_labels(objects).items()


def test_ingress_terminates_tls_for_the_host(objects: list[dict[str, Any]], stack: str) -> None:
    ingress = find(objects, "Ingress", NAME, "aicash")
    host = {"dev": "aicash.127.0.0.1.nip.io", "prod": "signals.aicash.example.com"}[stack]
    assert ingress["spec"]["tls"] == [{"hosts": [host], "secretName": "aicash-inference-tls"}]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == NAME and ingress["spec"]["rules"][0]["host"] == host
    annotations = ingress["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/force-ssl-redirect"] == "true"
    # prod asks cert-manager for the certificate; dev uses a provided secret
    assert ("cert-manager.io/cluster-issuer" in annotations) == (stack == "prod")


def _deps(program: Any, suffix: str) -> set[str]:
    [urn] = [u for u in program.dependencies if u.endswith(f"::{suffix}")]
    return {dep.split("::")[-1] for dep in program.dependencies[urn]}


@pytest.mark.parametrize(
    "child",
    ["inference-deployment", "inference-service", "feature-server-deployment", "monitoring-aicash-drift-report",
     "monitoring-aicash-canary-judge"],
)
def test_services_and_jobs_start_after_the_migrations_job(program: Any, child: str) -> None:
    assert "migrations-job" in _deps(program, child)


def test_migrations_run_after_the_database_and_settings(program: Any, stack: str) -> None:
    deps = _deps(program, "migrations-job")
    assert {"settings-aicash-secret", "settings-aicash-config"} <= deps
    assert ("database-rds" if stack == "prod" else "database-statefulset") in deps
    job = next(o for o in manifests(program) if o["kind"] == "Job" and "db-upgrade" in o["metadata"]["name"])
    [step] = pod_spec(job)["containers"]
    assert step["command"] == ["sh", "-c", "aicash db upgrade && aicash db grant-logins"]  # as the owner
    assert pod_spec(job)["restartPolicy"] == "Never"


def test_ingress_routes_the_api_but_not_metrics_or_probes(objects: list[dict[str, Any]], stack: str) -> None:
    ingress = find(objects, "Ingress", NAME, "aicash")
    paths = [p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]
    assert {"/predict", "/indicators", "/weights", "/models", "/health", "/train", "/training-status"} <= set(paths)
    assert "/" not in paths  # not everything: /metrics and the probes stay inside the cluster
    assert not any(path.startswith(("/metrics", "/livez", "/readyz", "/healthz")) for path in paths)
