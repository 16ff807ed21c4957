"""`KubeflowPipelines`: standalone KFP from its upstream kustomize manifests at a pinned release.

The manifests are fetched by the Kubernetes provider at `pulumi up`; `kfp_wiring.wire` rewrites them on
the way in so KFP keeps its runs, cache and metadata on the platform's PostgreSQL and its artifacts in the
platform's bucket (under `s3://<bucket>/pipelines`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import kube
from infra.component import Component
from infra.kfp_wiring import KfpWiring, depend_on, launcher_providers, wire

UPSTREAM = "https://github.com/kubeflow/pipelines/manifests/kustomize"
CLUSTER_SCOPED = "cluster-scoped-resources"
# The pieces of `env/platform-agnostic-postgresql` minus its bundled PostgreSQL and object store.
NAMESPACED = (
    "base/installs/generic/postgres",
    "base/metadata/overlays/postgres",
    "third-party/argo/installs/namespace",
)
API_SERVICE = "ml-pipeline"  # upstream's API Service; it selects the pods labelled `app: ml-pipeline`
API_PORT = 8888
UI_PORT = 80


@dataclass(frozen=True)
class KubeflowPipelinesArgs:
    """The KFP release and namespace, and where it keeps its state."""

    namespace: str
    version: str
    wiring: KfpWiring


def manifest_url(path: str, version: str) -> str:
    return f"{UPSTREAM}/{path}?ref={version}"


def api_url(namespace: str) -> str:
    """KFP's API inside the cluster (what `kfp.Client(host=...)` and KFP_HOST take)."""
    return f"http://{API_SERVICE}.{namespace}.svc.cluster.local:{API_PORT}"


class KubeflowPipelines(Component):
    """The `kubeflow` namespace, the upstream manifests (wired) and the `kfp-launcher` config."""

    api_url: str
    ui_service: str

    def __init__(self, name: str, args: KubeflowPipelinesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicash:pipelines:KubeflowPipelines", name, opts)
        ns, w = args.namespace, args.wiring
        namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": ns,
                "labels": {"app.kubernetes.io/part-of": "aicash", "pod-security.kubernetes.io/enforce": "baseline"},
            },
            opts=self.child_opts(),
        )
        after_namespace = self.child_opts(depends_on=[namespace])
        transform = wire(w)
        cluster_scoped = k8s.kustomize.Directory(
            f"{name}-cluster-scoped",
            directory=manifest_url(CLUSTER_SCOPED, args.version),
            transformations=[transform, depend_on([*self._depends_on, namespace])],
            opts=after_namespace,
        )
        for path in NAMESPACED:
            k8s.kustomize.Directory(
                f"{name}-{path.split('/')[-2]}-{path.split('/')[-1]}",
                directory=manifest_url(path, args.version),
                transformations=[transform, depend_on([*self._depends_on, namespace, cluster_scoped])],
                opts=self.child_opts(depends_on=[namespace, cluster_scoped]),
            )
        k8s.core.v1.ConfigMap(
            f"{name}-launcher",
            metadata=kube.meta("kfp-launcher", ns, "pipelines"),
            data={"defaultPipelineRoot": w.pipeline_root, "providers": launcher_providers(w, kube.SETTINGS_SECRET)},
            opts=after_namespace,
        )
        self.api_url = api_url(ns)
        self.ui_service = f"svc/ml-pipeline-ui -n {ns}"
        self.register_outputs({"api_url": self.api_url})
