"""Point the upstream Kubeflow Pipelines manifests at the platform's PostgreSQL and bucket.

`wire(...)` returns a kustomize transformation: it runs on every upstream object before Pulumi registers
it, so KFP's API server, cache and metadata store use the same database server and the same bucket as the
rest of the platform. Upstream's own throwaway database and its Namespace objects are dropped, and every
upstream object is labelled as third party (the policy pack exempts those from our container rules).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi

THIRD_PARTY_LABEL = "aicash.io/third-party"
THIRD_PARTY_VALUE = "kubeflow-pipelines"
PIPELINE_ROOT_PREFIX = "pipelines"
# Upstream's bundled MLMD database (replaced by the platform's server) and launcher config (ours).
DROPPED = {
    ("Deployment", "metadata-postgres-db"),
    ("Service", "metadata-postgres-db"),
    ("PersistentVolumeClaim", "metadata-postgres-db"),
    ("ConfigMap", "kfp-launcher"),
}
DEFAULT_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}}


@dataclass(frozen=True)
class KfpWiring:
    """Where KFP finds the database and the bucket, and with which credentials."""

    db_host: pulumi.Input[str]
    db_port: int
    db_user: str
    db_password: pulumi.Output[str]
    db_sslmode: str
    bucket: str
    object_host: str
    object_port: int
    object_secure: bool
    region: str
    access_key: str | None = None
    secret_key: pulumi.Output[str] | None = None
    role_arn: pulumi.Input[str] | None = None

    @property
    def pipeline_root(self) -> str:
        return f"s3://{self.bucket}/{PIPELINE_ROOT_PREFIX}"


def _drop(obj: dict[str, Any]) -> None:
    """Pulumi's documented way to omit an object from a kustomization: turn it into an empty List."""
    for key in list(obj):
        del obj[key]
    obj.update({"apiVersion": "v1", "kind": "List", "items": []})


def _set_env(container: dict[str, Any], name: str, value: pulumi.Input[str]) -> None:
    env = container.setdefault("env", [])
    env[:] = [entry for entry in env if entry.get("name") != name]
    env.append({"name": name, "value": value})


def _pod_spec(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj.get("kind") in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
        return obj.get("spec", {}).get("template", {}).get("spec")
    return None


def _fill_resources(pod: dict[str, Any]) -> None:
    """Give upstream containers requests and limits where they have none."""
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        resources = container.setdefault("resources", {})
        for kind, defaults in DEFAULT_RESOURCES.items():
            resources.setdefault(kind, {}).update({k: v for k, v in defaults.items() if k not in resources[kind]})


def _configure(obj: dict[str, Any], w: KfpWiring) -> None:  # noqa: C901 - a flat table of cases
    kind, name = obj.get("kind"), obj.get("metadata", {}).get("name")
    if kind == "ConfigMap" and name == "pipeline-install-config":
        obj.setdefault("data", {}).update(
            {
                "dbType": "postgres",
                "postgresHost": w.db_host,
                "postgresPort": str(w.db_port),
                "postgresExtraParams": json.dumps({"sslmode": w.db_sslmode}),
                "bucketName": w.bucket,
                "defaultPipelineRoot": w.pipeline_root,
            }
        )
    elif kind == "ConfigMap" and name == "metadata-postgres-db-parameters":
        obj.setdefault("data", {}).update({"MLMD_DB_HOST": w.db_host, "POSTGRES_PORT": str(w.db_port)})
    elif kind == "Secret" and name in {"postgres-secret", "postgres-secret-extended"}:
        obj.pop("data", None)
        obj["stringData"] = {"username": w.db_user, "password": w.db_password}
    elif kind == "Secret" and name == "metadata-postgres-db-secrets":
        obj.pop("data", None)
        obj["stringData"] = {"POSTGRES_USER": w.db_user, "POSTGRES_PASSWORD": w.db_password}
    elif kind == "Secret" and name == "mlpipeline-minio-artifact":
        # empty keys on AWS: the API server falls back to the IRSA role of its service account
        obj.pop("data", None)
        obj["stringData"] = {"accesskey": w.access_key or "", "secretkey": w.secret_key or ""}
    elif kind == "ServiceAccount" and name in {"ml-pipeline", "pipeline-runner"} and w.role_arn is not None:
        obj["metadata"].setdefault("annotations", {})["eks.amazonaws.com/role-arn"] = w.role_arn
    pod = _pod_spec(obj)
    if pod is None:
        return
    _fill_resources(pod)
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        if name == "ml-pipeline" and container.get("name") == "ml-pipeline-api-server":
            _set_env(container, "OBJECTSTORECONFIG_HOST", w.object_host)
            _set_env(container, "OBJECTSTORECONFIG_PORT", str(w.object_port))
            _set_env(container, "OBJECTSTORECONFIG_SECURE", "true" if w.object_secure else "false")
            _set_env(container, "OBJECTSTORECONFIG_REGION", w.region)
        if any(entry.get("name") == "WAIT_HOST" for entry in container.get("env", [])):
            _set_env(container, "WAIT_HOST", w.db_host)


def wire(w: KfpWiring) -> Callable[[dict[str, Any], pulumi.ResourceOptions], None]:
    """The transformation for `kustomize.Directory(..., transformations=[wire(w)])`."""

    def transform(obj: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
        kind, name = obj.get("kind"), obj.get("metadata", {}).get("name")
        if kind == "Namespace" or (kind, name) in DROPPED:
            _drop(obj)
            return
        obj.setdefault("metadata", {}).setdefault("labels", {})[THIRD_PARTY_LABEL] = THIRD_PARTY_VALUE
        _configure(obj, w)

    return transform


def depend_on(resources: list[pulumi.Resource]) -> Callable[[dict[str, Any], pulumi.ResourceOptions], None]:
    """A transformation that orders every upstream object after `resources` (the kustomize component's
    own `depends_on` does not reach the objects it creates)."""

    def transform(obj: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
        existing = opts.depends_on
        current = [] if existing is None else [existing] if isinstance(existing, pulumi.Resource) else list(existing)
        opts.depends_on = [*current, *resources]

    return transform


def launcher_providers(w: KfpWiring, credentials_secret: str) -> str:
    """The `providers` entry of KFP's `kfp-launcher` ConfigMap: how pipeline steps reach the bucket."""
    endpoint = f"{w.object_host}:{w.object_port}"
    if w.access_key:
        credentials: dict[str, Any] = {
            "fromEnv": False,
            "secretRef": {
                "secretName": credentials_secret,
                "accessKeyKey": "AWS_ACCESS_KEY_ID",
                "secretKeyKey": "AWS_SECRET_ACCESS_KEY",
            },
        }
    else:
        credentials = {"fromEnv": True}
    provider = {"endpoint": endpoint, "region": w.region, "disableSSL": not w.object_secure, "credentials": credentials}
    return json.dumps({"s3": {"default": provider}})
