"""NetworkPolicies: default deny; only the ingress controller (and the alert check's and Prometheus' scrapes) reach
the service;
only platform workloads (and KFP) reach PostgreSQL and the object store; on AWS only the database subnets."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import pytest

from infra import kube
from infra.kubeflow import api_url
from infra.network_policies import NetworkPoliciesArgs, policy_specs
from infra.policy.rules import pod_spec
from infra.render import RecordingMocks, manifests, unwrap
from tests.support.infra import find

DB_SUBNETS = ("10.40.64.0/20", "10.40.80.0/20")
DEV = NetworkPoliciesArgs("aicash", "kubeflow", "ingress-nginx", in_cluster_data=True)
PROD = NetworkPoliciesArgs("aicash", "kubeflow", "ingress-nginx", in_cluster_data=False, database_cidrs=DB_SUBNETS)
INGRESS_NGINX = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}
HEALTH_CHECK = {"podSelector": {"matchLabels": kube.selector("aicash-health-check")}}
PROMETHEUS = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}


def _sources(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [source for rule in spec["ingress"] for source in rule["from"]]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return selector.get("matchLabels", {}).items() <= labels.items()


def _pod_labels(obj: dict[str, Any]) -> dict[str, str]:
    template = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
    return template["template"]["metadata"]["labels"]


def _policies(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o["spec"] for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["namespace"] == "aicash"]


def test_everything_is_denied_by_default(objects: list[dict[str, Any]]) -> None:
    deny = find(objects, "NetworkPolicy", "default-deny-all", "aicash")["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_only_the_ingress_controller_the_alert_check_and_prometheus_reach_the_inference_service(
    objects: list[dict[str, Any]],
) -> None:
    inference = _pod_labels(find(objects, "Deployment", "aicash-inference", "aicash"))
    admitted = [
        (source, tuple(p["port"] for p in rule["ports"]))
        for spec in _policies(objects)
        if "Ingress" in spec["policyTypes"] and _selects(spec["podSelector"], inference)
        for rule in spec.get("ingress", [])
        for source in rule["from"]
    ]
    expected = [(INGRESS_NGINX, (3000,)), (HEALTH_CHECK, (3000,)), (PROMETHEUS, (3000,))]
    assert sorted(admitted, key=str) == sorted(expected, key=str)
    check = _pod_labels(find(objects, "CronJob", "aicash-health-check", "aicash"))
    assert _selects(HEALTH_CHECK["podSelector"], check)
    others = [o for o in objects if pod_spec(o) is not None and o["metadata"]["name"] != "aicash-health-check"]
    assert not [o for o in others if _selects(HEALTH_CHECK["podSelector"], _pod_labels(o))]


def test_the_alert_check_may_reach_the_inference_pods_it_scrapes(objects: list[dict[str, Any]]) -> None:
    check = _pod_labels(find(objects, "CronJob", "aicash-health-check", "aicash"))
    inference = _pod_labels(find(objects, "Deployment", "aicash-inference", "aicash"))
    allowed = [
        rule
        for spec in _policies(objects)
        if "Egress" in spec["policyTypes"] and _selects(spec["podSelector"], check)
        for rule in spec.get("egress", [])
        if any("podSelector" in peer and "namespaceSelector" not in peer
               and _selects(peer["podSelector"], inference) for peer in rule["to"])  # fmt: skip
    ]
    assert [rule["ports"] for rule in allowed] == [[{"protocol": "TCP", "port": 3000}]]


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


def _egress_to_port(specs: list[dict[str, Any]], port: int) -> list[dict[str, Any]]:
    """Every egress rule (with its policy's pod selector) that lets traffic out to `port`."""
    return [
        {"pods": spec["podSelector"], **rule}
        for spec in specs
        if "Egress" in spec["policyTypes"]
        for rule in spec.get("egress", [])
        if "ports" not in rule or any(p["port"] == port for p in rule["ports"])
    ]


def test_on_aws_only_platform_workloads_may_open_postgres_and_only_towards_the_database_subnets() -> None:
    specs = policy_specs(PROD)
    assert "postgres-from-platform" not in specs
    [rule] = _egress_to_port(list(specs.values()), 5432)
    assert rule["pods"] == {"matchLabels": {kube.PLATFORM_CLIENT: "true"}}
    assert rule["to"] == [{"ipBlock": {"cidr": cidr}} for cidr in DB_SUBNETS]
    assert rule["ports"] == [{"protocol": "TCP", "port": 5432}]
    anywhere = [r for r in specs["platform-egress"]["egress"] if r["to"] == [{"ipBlock": {"cidr": "0.0.0.0/0"}}]]
    assert {p["port"] for p in anywhere[0]["ports"]} == {443, 587}


def test_on_aws_the_policy_needs_the_database_subnets() -> None:
    with pytest.raises(ValueError, match="database_cidrs"):
        policy_specs(NetworkPoliciesArgs("aicash", "kubeflow", "ingress-nginx", in_cluster_data=False))


def test_prod_postgres_egress_is_exactly_the_rds_subnets(programs: dict[str, RecordingMocks]) -> None:
    """The CIDRs pods may open 5432 towards are those of the RDS subnet group: not the VPC, not the nodes."""
    program = programs["prod"]
    aws = [(r.typ, r.name, unwrap(r.inputs)) for r in program.records if r.typ.startswith("aws:")]
    subnets = {f"{name}-id": props for typ, name, props in aws if typ == "aws:ec2/subnet:Subnet"}
    [group] = [props for typ, _, props in aws if typ == "aws:rds/subnetGroup:SubnetGroup"]
    [nodes] = [props for typ, _, props in aws if typ == "aws:eks/nodeGroup:NodeGroup"]
    [vpc] = [props for typ, _, props in aws if typ == "aws:ec2/vpc:Vpc"]
    rds = {subnets[s]["cidrBlock"] for s in group["subnetIds"]}
    others = {p["cidrBlock"] for p in subnets.values()} - rds  # the nodes' and the load balancers' subnets
    assert len(rds) == 2 and {subnets[s]["cidrBlock"] for s in nodes["subnetIds"]} <= others

    [rule] = _egress_to_port(_policies(manifests(program)), 5432)
    opened = [ipaddress.ip_network(peer["ipBlock"]["cidr"]) for peer in rule["to"]]
    assert {str(net) for net in opened} == rds and vpc["cidrBlock"] not in rds
    assert not [o for o in others for net in opened if net.overlaps(ipaddress.ip_network(o))]


def test_rds_subnets_have_no_route_out_of_the_vpc(programs: dict[str, RecordingMocks]) -> None:
    records = [r for r in programs["prod"].records if r.typ.startswith("aws:ec2/")]
    tables = {r.name: unwrap(r.inputs) for r in records if r.typ == "aws:ec2/routeTable:RouteTable"}
    associations = [unwrap(r.inputs) for r in records if r.typ == "aws:ec2/routeTableAssociation:RouteTableAssociation"]
    database = [a for a in associations if "-database-" in a["subnetId"]]
    assert len(database) == 2
    for association in database:
        table = tables[association["routeTableId"].removesuffix("-id")]
        assert not table.get("routes")


def test_platform_workloads_may_reach_the_kfp_api_they_are_configured_with(
    objects: list[dict[str, Any]], stack: str
) -> None:
    host = find(objects, "ConfigMap", kube.SETTINGS_CONFIGMAP, "aicash")["data"]["KFP_HOST"]
    assert host == api_url("kubeflow")
    service, namespace = urlsplit(host).hostname.split(".")[:2]
    rules = _egress_to_port(_policies(objects), urlsplit(host).port)
    kfp_rules = [r for r in rules if any("namespaceSelector" in peer for peer in r["to"])]
    assert kfp_rules == [
        {
            "pods": {"matchLabels": {kube.PLATFORM_CLIENT: "true"}},
            "to": [
                {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                    "podSelector": {"matchLabels": {"app": service}},  # upstream's `ml-pipeline` Service selector
                }
            ],
            "ports": [{"protocol": "TCP", "port": 8888}],
        }
    ]


def test_the_kfp_sync_job_may_reach_the_kfp_api_and_the_database(objects: list[dict[str, Any]]) -> None:
    sync = _pod_labels(find(objects, "CronJob", "aicash-kfp-sync", "aicash"))
    host = urlsplit(find(objects, "ConfigMap", kube.SETTINGS_CONFIGMAP, "aicash")["data"]["KFP_HOST"])
    service, namespace = host.hostname.split(".")[:2]
    to_kfp = [peer for rule in _egress_to_port(_policies(objects), host.port) if _selects(rule["pods"], sync)
              for peer in rule["to"]]  # fmt: skip
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "podSelector": {"matchLabels": {"app": service}}} in to_kfp  # fmt: skip
    assert [rule for rule in _egress_to_port(_policies(objects), 5432) if _selects(rule["pods"], sync)]


def test_client_label_marks_exactly_the_platform_workloads(objects: list[dict[str, Any]], stack: str) -> None:
    labelled = {
        o["metadata"]["name"]
        for o in objects
        if pod_spec(o) is not None and o["metadata"].get("labels", {}).get(kube.PLATFORM_CLIENT) == "true"
    }
    expected = {"aicash-inference", "aicash-feature-server", "aicash-drift-report", "aicash-health-check",
                "aicash-canary-judge", "aicash-kfp-sync", "aicash-db-upgrade-0-1-0",
                "aicash-monitor-exporter"}  # fmt: skip
    # the schedules (infra/schedules.py): two CronJobs and the Job reconciling KFP's recurring training run
    expected |= {"aicash-ingest", "aicash-signal-weights"}
    expected |= {n for n in labelled if n.startswith("aicash-training-schedule-")}
    if stack == "dev":
        expected.add("minio-bucket-aicash-dev-models")
        for server in ("postgres", "minio"):
            assert kube.PLATFORM_CLIENT not in find(objects, "StatefulSet", server, "aicash")["metadata"]["labels"]
    assert labelled == expected
