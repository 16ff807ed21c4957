"""`FeatureServer`: Feast's HTTP feature server (`feast serve`) from the platform image.

It serves the `features` package installed in the image with the aicash wheel. `aicash features env` derives
Feast's variables (registry URL, PostgreSQL host, user, password, sslmode, the cluster YAML file, the repository
folder) from DATABASE_URL, so the server reads exactly the store the rest of the platform writes. It logs in as
the serving login (aicash_serving: it only reads the registry and the online store).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import kube
from infra.component import Component
from infra.config import Resources
from infra.database import login_env

PORT = 6566
NAME = "aicash-feature-server"
# 0.0.0.0: the pod's own interfaces; the NetworkPolicies decide who may connect.
SERVE = f'eval "$(aicash features env)" && exec feast serve --host 0.0.0.0 --port {PORT} --no-access-log'


@dataclass(frozen=True)
class FeatureServerArgs:
    """The platform image and how many replicas serve online features."""

    namespace: str
    image: str
    replicas: int = 2


class FeatureServer(Component):
    """A Deployment, its Service and a PodDisruptionBudget; `url` is the in-cluster address."""

    url: str

    def __init__(self, name: str, args: FeatureServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicash:features:FeatureServer", name, opts)
        child = self.child_opts()
        ns = args.namespace
        server = kube.container(
            "feast",
            args.image,
            Resources("250m", "512Mi", "1", "1Gi"),
            command=["sh", "-c", SERVE],
            ports=[{"name": "http", "containerPort": PORT}],
            env_from=kube.platform_env(),
            env=login_env(("DATABASE_URL", "SERVING_DATABASE_URL")),
            liveness=kube.tcp_probe("http"),
            readiness=kube.http_probe("/health", "http"),
            mounts=[kube.home_mount()],
        )
        k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=kube.meta(NAME, ns, "feature-server", client=True),
            spec={
                "replicas": args.replicas,
                "selector": {"matchLabels": kube.selector(NAME)},
                "template": {
                    "metadata": {"labels": kube.labels(NAME, "feature-server", client=True)},
                    "spec": kube.pod_spec([server], run_as_user=kube.PLATFORM_UID, volumes=[kube.home_volume()]),
                },
            },
            opts=child,
        )
        k8s.core.v1.Service(
            f"{name}-service",
            metadata=kube.meta(NAME, ns, "feature-server"),
            spec={"selector": kube.selector(NAME), "ports": [{"name": "http", "port": PORT, "targetPort": "http"}]},
            opts=child,
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=kube.meta(NAME, ns, "feature-server"),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": kube.selector(NAME)}},
            opts=child,
        )
        self.url = kube.service_url(NAME, ns, PORT)
        self.register_outputs({"url": self.url})
