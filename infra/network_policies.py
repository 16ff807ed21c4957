"""`NetworkPolicies`: deny everything in the platform namespace, then open exactly what is needed.

- Only the ingress controller reaches the inference service, and the alert-check job and the monitoring stack's
  Prometheus (to scrape /metrics; a NetworkPolicy opens the port, not a path).
- Only platform workloads (label `aicash.io/platform-client`) and Kubeflow Pipelines reach PostgreSQL and
  the object store in the cluster (`local`), and Redis (Feast's online store, when it runs) on either cloud.
  On `aws` only platform workloads may open PostgreSQL's port, and
  only towards the VPC's database subnets, where nothing but RDS lives (RDS's security group admits the whole
  EKS cluster security group: pods share their node's group, so this policy is the finer fence).
- Platform workloads may reach KFP's API (training runs: POST /train, `monitor drift --retrain`; their outcomes:
  the `aicash-kfp-sync` job and `monitor check`, which read them with `aicash pipeline status`) and leave
  the cluster on 443 (S3, AWS APIs, the public URL) and the SMTP port.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import kube
from infra.component import Component
from infra.database import NAME as POSTGRES
from infra.database import POSTGRES_PORT
from infra.feature_server import NAME as FEATURE_SERVER
from infra.feature_server import PORT as FEATURE_PORT
from infra.inference import NAME as INFERENCE
from infra.inference import PORT as INFERENCE_PORT
from infra.kubeflow import API_PORT as KFP_API_PORT
from infra.kubeflow import API_SERVICE as KFP_API
from infra.monitoring import CHECK_JOB
from infra.object_store import MINIO_PORT
from infra.object_store import NAME as MINIO
from infra.observability import EXPORTER as MONITOR_EXPORTER
from infra.observability import EXPORTER_PORT as MONITOR_EXPORTER_PORT
from infra.online_store import NAME as REDIS
from infra.online_store import REDIS_PORT

NAMESPACE_KEY = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class NetworkPoliciesArgs:
    """`in_cluster_data`: PostgreSQL and MinIO run in the namespace; otherwise `database_cidrs` are the subnets
    that hold RDS (and nothing else)."""

    namespace: str
    kfp_namespace: str
    ingress_controller_namespace: str
    in_cluster_data: bool
    database_cidrs: tuple[str, ...] = ()
    smtp_port: int = 587
    redis: bool = False  # Feast's online store runs in the namespace
    prometheus_namespace: str | None = None  # the monitoring stack's, which scrapes every inference replica


def _in_namespace(name: str) -> kube.Obj:
    return {"namespaceSelector": {"matchLabels": {NAMESPACE_KEY: name}}}


def _pods(labels: dict[str, str]) -> kube.Obj:
    return {"podSelector": {"matchLabels": labels}}


def _tcp(*ports: int) -> list[kube.Obj]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def policy_specs(args: NetworkPoliciesArgs) -> dict[str, kube.Obj]:
    """Every NetworkPolicy spec by object name (pure, so tests can read the rules)."""
    if not args.in_cluster_data and not args.database_cidrs:
        raise ValueError("database_cidrs: the subnets that hold the database are needed when it runs outside")
    clients = _pods({kube.PLATFORM_CLIENT: "true"})
    kfp = _in_namespace(args.kfp_namespace)
    specs: dict[str, kube.Obj] = {
        "default-deny-all": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        "allow-dns": {
            "podSelector": {},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [{**_in_namespace("kube-system"), **_pods({"k8s-app": "kube-dns"})}],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                }
            ],
        },
        "inference-from-ingress-controller": {
            "podSelector": {"matchLabels": kube.selector(INFERENCE)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [_in_namespace(args.ingress_controller_namespace)], "ports": _tcp(INFERENCE_PORT)}],
        },
        # `aicash monitor check` scrapes the service's /metrics through its in-cluster Service
        "inference-from-health-check": {
            "podSelector": {"matchLabels": kube.selector(INFERENCE)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [_pods(kube.selector(CHECK_JOB))], "ports": _tcp(INFERENCE_PORT)}],
        },
        **({"inference-from-prometheus": {
            "podSelector": {"matchLabels": kube.selector(INFERENCE)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [_in_namespace(args.prometheus_namespace)], "ports": _tcp(INFERENCE_PORT)}],
        }, "monitor-exporter-from-prometheus": {
            "podSelector": {"matchLabels": kube.selector(MONITOR_EXPORTER)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [_in_namespace(args.prometheus_namespace)], "ports": _tcp(MONITOR_EXPORTER_PORT)}],
        }} if args.prometheus_namespace else {}),
        "health-check-to-inference": {
            "podSelector": {"matchLabels": kube.selector(CHECK_JOB)},
            "policyTypes": ["Egress"],
            "egress": [{"to": [_pods(kube.selector(INFERENCE))], "ports": _tcp(INFERENCE_PORT)}],
        },
        "feature-server-from-platform": {
            "podSelector": {"matchLabels": kube.selector(FEATURE_SERVER)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [clients, kfp], "ports": _tcp(FEATURE_PORT)}],
        },
    }
    egress: list[kube.Obj] = [
        {"to": [_pods(kube.selector(FEATURE_SERVER))], "ports": _tcp(FEATURE_PORT)},
        {"to": [{**kfp, **_pods({"app": KFP_API})}], "ports": _tcp(KFP_API_PORT)},
        {"to": [{"ipBlock": {"cidr": "0.0.0.0/0"}}], "ports": _tcp(443, args.smtp_port)},
    ]
    in_namespace = [(POSTGRES, POSTGRES_PORT), (MINIO, MINIO_PORT)] if args.in_cluster_data else []
    if args.redis:
        in_namespace.append((REDIS, REDIS_PORT))
    for name, port in in_namespace:
        specs[f"{name}-from-platform"] = {
            "podSelector": {"matchLabels": kube.selector(name)},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [clients, kfp], "ports": _tcp(port)}],
        }
        egress.append({"to": [_pods(kube.selector(name))], "ports": _tcp(port)})
    if not args.in_cluster_data:
        egress.append({"to": [{"ipBlock": {"cidr": c}} for c in args.database_cidrs], "ports": _tcp(POSTGRES_PORT)})
    specs["platform-egress"] = {"podSelector": clients["podSelector"], "policyTypes": ["Egress"], "egress": egress}
    return specs


class NetworkPolicies(Component):
    """One NetworkPolicy per entry of `policy_specs`."""

    def __init__(self, name: str, args: NetworkPoliciesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicash:network:NetworkPolicies", name, opts)
        for policy, spec in policy_specs(args).items():
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{policy}",
                metadata=kube.meta(policy, args.namespace, "network"),
                spec=spec,
                opts=self.child_opts(),
            )
        self.register_outputs({})
