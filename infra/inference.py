"""`InferenceService`: the Bento image (`bentoml containerize`) behind an autoscaler and a TLS Ingress.

Probes follow BentoML's endpoints (`/livez`, `/readyz`); the liveness timeout leaves room for the
garbage-collection pauses measured under load (docs/runbook.md, "Predictions slow").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from infra import kube
from infra.component import Component
from infra.config import InferenceConfig, IngressConfig
from infra.database import login_env

PORT = 3000
NAME = "aicash-inference"


@dataclass(frozen=True)
class InferenceServiceArgs:
    """The Bento image (repository:tag), scaling bounds and how the service is exposed."""

    namespace: str
    image: str
    host: str
    config: InferenceConfig = field(default_factory=InferenceConfig)
    ingress: IngressConfig = field(default_factory=IngressConfig)
    # the service's own login (aicash_serving) and its admin operations' (aicash_training), over the owner's URL
    database_env: list[kube.Obj] = field(default_factory=lambda: login_env(
        ("DATABASE_URL", "SERVING_DATABASE_URL"), ("ADMIN_DATABASE_URL", "ADMIN_DATABASE_URL")))


# What the Ingress routes: the frontend's and the admin API (each Prefix also covers /predict/batch and
# /models/{version}/promote). Not /metrics, /livez, /readyz: Prometheus and the kubelet reach the pods inside.
PUBLIC_PATHS = ("/predict", "/indicators", "/weights", "/models", "/health", "/train", "/training-status",
                "/docs.json")


def ingress_annotations(ingress: IngressConfig) -> dict[str, str]:
    """Redirect HTTP to HTTPS; ask cert-manager for the certificate when an issuer is configured."""
    annotations = {"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"}
    if ingress.cluster_issuer:
        annotations["cert-manager.io/cluster-issuer"] = ingress.cluster_issuer
    return annotations


class InferenceService(Component):
    """Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget and Ingress."""

    url: str
    internal_url: str

    def __init__(self, name: str, args: InferenceServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicash:serving:InferenceService", name, opts)
        child = self.child_opts()
        ns, cfg = args.namespace, args.config
        bento = kube.container(
            "bento",
            args.image,
            cfg.resources,
            ports=[{"name": "http", "containerPort": PORT}],
            env=args.database_env,
            env_from=kube.platform_env(),
            liveness={**kube.http_probe("/livez", "http", timeout=5, failures=3), "initialDelaySeconds": 10},
            readiness=kube.http_probe("/readyz", "http", period=5, timeout=3),
            mounts=[kube.home_mount()],
        )
        bento["startupProbe"] = kube.http_probe("/livez", "http", period=5, failures=30)
        pod = kube.pod_spec([bento], run_as_user=cfg.run_as_user, volumes=[kube.home_volume()])
        pod["terminationGracePeriodSeconds"] = 30
        pod["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": kube.selector(NAME)},
            }
        ]
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=kube.meta(NAME, ns, "inference", client=True),
            spec={
                # no `replicas`: the HorizontalPodAutoscaler owns the count
                "selector": {"matchLabels": kube.selector(NAME)},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {"metadata": {"labels": kube.labels(NAME, "inference", client=True)}, "spec": pod},
            },
            opts=child,
        )
        k8s.core.v1.Service(
            f"{name}-service",
            metadata=kube.meta(NAME, ns, "inference"),
            spec={"selector": kube.selector(NAME), "ports": [{"name": "http", "port": PORT, "targetPort": "http"}]},
            opts=child,
        )
        k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            metadata=kube.meta(NAME, ns, "inference"),
            spec={
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME},
                "minReplicas": cfg.min_replicas,
                "maxReplicas": cfg.max_replicas,
                "metrics": [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": cfg.cpu_target_percent},
                        },
                    }
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
            },
            opts=self.child_opts(depends_on=[deployment]),
        )
        k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=kube.meta(NAME, ns, "inference"),
            spec={"maxUnavailable": 1, "selector": {"matchLabels": kube.selector(NAME)}},
            opts=child,
        )
        k8s.networking.v1.Ingress(
            f"{name}-ingress",
            metadata=kube.meta(NAME, ns, "inference", annotations=ingress_annotations(args.ingress)),
            spec={
                "ingressClassName": args.ingress.class_name,
                "tls": [{"hosts": [args.host], "secretName": args.ingress.tls_secret_name}],
                "rules": [
                    {
                        "host": args.host,
                        "http": {
                            "paths": [
                                {
                                    "path": path,
                                    "pathType": "Prefix",
                                    "backend": {"service": {"name": NAME, "port": {"name": "http"}}},
                                }
                                for path in PUBLIC_PATHS
                            ]
                        },
                    }
                ],
            },
            opts=child,
        )
        self.url = f"https://{args.host}"
        self.internal_url = kube.service_url(NAME, ns, PORT)  # for in-cluster callers (the metrics scrape)
        self.register_outputs({"url": self.url, "internal_url": self.internal_url})
