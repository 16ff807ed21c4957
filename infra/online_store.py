"""`OnlineStore`: Redis as Feast's online store (settings `FEAST_ONLINE_STORE=redis`), in the platform namespace.

With the online features in Redis and the Feast registry in the bucket, the inference service needs nothing from
PostgreSQL to answer: a replica that starts during a database outage reads its features from here, its keys
from the key snapshot in the bucket and its model from its Bento. Redis keeps an append-only file on a volume,
so a restart keeps the materialized rows; `aicash features materialize` rewrites them in any case. Only platform
workloads and Kubeflow Pipelines reach it (see `NetworkPolicies`); it asks for a password.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote

import pulumi
import pulumi_kubernetes as k8s

from infra import kube
from infra.component import Component
from infra.config import OnlineStoreConfig, Resources

NAME = "redis"
REDIS_PORT = 6379
REDIS_UID = 999  # the redis user of the official Debian image
PASSWORD_KEY = "REDIS_PASSWORD"  # noqa: S105 - an environment variable's name


@dataclass(frozen=True)
class OnlineStoreArgs:
    namespace: str
    password: pulumi.Output[str]
    config: OnlineStoreConfig = field(default_factory=OnlineStoreConfig)


def redis_url(password: str, host: str, port: int = REDIS_PORT, db: int = 0) -> str:
    """The REDIS_URL setting; the password is percent-encoded."""
    return f"redis://:{quote(password, safe='')}@{host}:{port}/{db}"


class OnlineStore(Component):
    """A one-replica Redis StatefulSet and its Service; `url` (the REDIS_URL setting) is a secret."""

    url: pulumi.Output[str]

    def __init__(self, name: str, args: OnlineStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicash:features:OnlineStore", name, opts)
        ns, cfg = args.namespace, args.config
        credentials = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata=kube.meta("redis-credentials", ns, "online-store"),
            string_data={PASSWORD_KEY: args.password},
            opts=self.child_opts(),
        )
        k8s.core.v1.Service(
            f"{name}-service",
            metadata=kube.meta(NAME, ns, "online-store"),
            spec={"selector": kube.selector(NAME),
                  "ports": [{"name": "redis", "port": REDIS_PORT, "targetPort": REDIS_PORT}]},
            opts=self.child_opts(),
        )
        ping = kube.exec_probe(["sh", "-c", 'redis-cli --no-auth-warning -a "$REDIS_PASSWORD" ping | grep -q PONG'])
        server = kube.container(
            NAME,
            cfg.image,
            Resources(cfg.cpu_request, cfg.memory_request, cfg.cpu_limit, cfg.memory_limit),
            command=["redis-server"],
            # Kubernetes expands $(REDIS_PASSWORD) from the container's env: the password is never in the spec.
            args=["--requirepass", f"$({PASSWORD_KEY})", "--appendonly", "yes", "--dir", "/data",
                  "--maxmemory-policy", "noeviction"],
            ports=[{"name": "redis", "containerPort": REDIS_PORT}],
            env=[{"name": PASSWORD_KEY,
                  "valueFrom": {"secretKeyRef": {"name": "redis-credentials", "key": PASSWORD_KEY}}}],
            liveness={**ping, "initialDelaySeconds": 10},
            readiness=ping,
            mounts=[{"name": "data", "mountPath": "/data"}],
        )
        k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=kube.meta(NAME, ns, "online-store"),
            spec=kube.stateful_spec(NAME, "online-store", server, uid=REDIS_UID, storage_gb=cfg.storage_gb),
            opts=self.child_opts(depends_on=[credentials]),
        )
        host = f"{NAME}.{ns}.svc.cluster.local"
        self.url = pulumi.Output.secret(args.password.apply(lambda pw: redis_url(pw, host)))
        self.register_outputs({"host": host, "port": REDIS_PORT})
