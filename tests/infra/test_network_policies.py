"""NetworkPolicies: default deny; only the ingress controller reaches the service; only platform
workloads (and KFP) reach PostgreSQL and the object store."""

from __future__ import annotations

from typing import Any

from infra import kube
from infra.network_policies import NetworkPoliciesArgs, policy_specs
from infra.policy.rules import pod_spec
from tests.infra.conftest import find

DEV = NetworkPoliciesArgs("aicash", "kubeflow", "ingress-nginx", in_cluster_data=True)
PROD = NetworkPoliciesArgs("aicash", "kubeflow", "ingress-nginx", in_cluster_data=False, database_cidr="10.40.0.0/16")


def _sources(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [source for rule in spec["ingress"] for source in rule["from"]]


def test_everything_is_denied_by_default(objects: list[dict[str, Any]]) -> None:
    deny = find(objects, "NetworkPolicy", "default-deny-all", "aicash")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_only_the_ingress_controller_reaches_the_inference_service() -> None:
    spec = policy_specs(DEV)["inference-from-ingress-controller"]
    assert _sources(spec) == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]
    assert spec["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 3000}]
    opened = [s for s in policy_specs(DEV).values() if "ingress" in s and s["podSelector"]]
    inference = {"matchLabels": kube.selector("aicash-inference")}
    assert [s for s in opened if s["podSelector"] == inference] == [spec]


def test_only_platform_workloads_and_kfp_reach_postgres_and_minio() -> None:
    specs = policy_specs(DEV)
    for name, port in (("postgres", 5432), ("minio", 9000)):
        spec = specs[f"{name}-from-platform"]
        assert spec["podSelector"] == {"matchLabels": kube.selector(name)}
        assert _sources(spec) == [
            {"podSelector": {"matchLabels": {kube.PLATFORM_CLIENT: "true"}}},
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}}},
        ]
        assert spec["ingress"][0]["ports"] == [{"protocol": "TCP", "port": port}]


def test_on_aws_only_platform_workloads_may_leave_for_rds() -> None:
    specs = policy_specs(PROD)
    assert "postgres-from-platform" not in specs
    egress = specs["platform-egress"]
    assert egress["podSelector"] == {"matchLabels": {kube.PLATFORM_CLIENT: "true"}}
    to_rds = [rule for rule in egress["egress"] if rule["to"] == [{"ipBlock": {"cidr": "10.40.0.0/16"}}]]
    assert to_rds == [{"to": [{"ipBlock": {"cidr": "10.40.0.0/16"}}], "ports": [{"protocol": "TCP", "port": 5432}]}]
    anywhere = [rule for rule in egress["egress"] if rule["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]]
    assert {p["port"] for p in anywhere[0]["ports"]} == {443, 587}


def test_client_label_marks_exactly_the_platform_workloads(objects: list[dict[str, Any]], stack: str) -> None:
    labelled = {
        o["metadata"]["name"]
        for o in objects
        if pod_spec(o) is not None and o["metadata"].get("labels", {}).get(kube.PLATFORM_CLIENT) == "true"
    }
    expected = {"aicash-inference", "aicash-feature-server", "aicash-drift-report", "aicash-health-check",
                "aicash-db-upgrade-0-1-0"}  # fmt: skip
    if stack == "dev":
        expected.add("minio-bucket-aicash-dev-models")
        for server in ("postgres", "minio"):
            assert kube.PLATFORM_CLIENT not in find(objects, "StatefulSet", server, "aicash")["metadata"]["labels"]
    assert labelled == expected
