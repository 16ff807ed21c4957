"""The Pulumi program's test inputs and look-ups: known secret values, a stand-in for the upstream KFP manifests,
one object of a rendered stack."""

from __future__ import annotations

from typing import Any

# Values no render may ever print; the program sees them as Pulumi secrets.
SECRETS = {
    "dbPassword": "db-Pa55/word+with@signs",
    "smtpPassword": "smtp-sekret-7f3a9c",
    "minioPassword": "minio-sekret-2b8e41",
    "redisPassword": "redis-Pa55/word@9d1c",
}


def _meta(name: str, **labels: str) -> dict[str, Any]:
    return {"name": name, "namespace": "kubeflow", "labels": {"application-crd-id": "kubeflow-pipelines", **labels}}


def _deployment(name: str, container: dict[str, Any], init: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [container]}
    if init:
        spec["initContainers"] = init
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name),
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def upstream_kfp(directory: str) -> list[dict[str, Any]]:
    """A small, representative stand-in for the upstream KFP manifests (the real ones need the network)."""
    if "cluster-scoped-resources" in directory:
        return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kubeflow"}}]
    if "installs/generic/postgres" in directory:
        api_env = [
            {"name": "OBJECTSTORECONFIG_HOST", "value": "seaweedfs.kubeflow"},
            {"name": "OBJECTSTORECONFIG_PORT", "value": "9000"},
        ]
        return [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta("pipeline-install-config"),
                "data": {"postgresHost": "postgres", "bucketName": "mlpipeline", "appName": "pipeline"},
            },
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": _meta("postgres-secret-extended"),
                "stringData": {"username": "user", "password": "password"},
            },
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": _meta("mlpipeline-minio-artifact"),
                "stringData": {"accesskey": "minio", "secretkey": "minio123"},
            },
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta("ml-pipeline")},
            _deployment(
                "ml-pipeline",
                {"name": "ml-pipeline-api-server", "image": "ghcr.io/kubeflow/kfp-api-server:2.17.1", "env": api_env},
            ),
        ]
    if "metadata/overlays/postgres" in directory:
        wait = {"name": "wait-for-database", "image": "busybox:1.36", "env": [{"name": "WAIT_HOST", "value": "x"}]}
        return [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta("metadata-postgres-db-parameters"),
                "data": {"MLMD_DB_HOST": "metadata-postgres-db", "POSTGRES_PORT": "5432", "POSTGRES_DBNAME": "m"},
            },
            _deployment("metadata-postgres-db", {"name": "postgres", "image": "postgres:14.7-alpine3.17"}),
            _deployment(
                "metadata-grpc-deployment",
                {"name": "container", "image": "ghcr.io/kubeflow/kfp-metadata-server:2.17.1"},
                init=[wait],
            ),
        ]
    return []


def find(objs: list[dict[str, Any]], kind: str, name: str, namespace: str | None = None) -> dict[str, Any]:
    """The one object of that kind and name (and namespace, if given)."""
    hits = [
        o
        for o in objs
        if o["kind"] == kind
        and o["metadata"].get("name") == name
        and (namespace is None or o["metadata"].get("namespace") == namespace)
    ]
    assert len(hits) == 1, f"expected one {kind} {name} in {namespace}, found {len(hits)}"
    return hits[0]
