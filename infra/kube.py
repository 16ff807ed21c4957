"""Small builders for Kubernetes objects, written as the camelCase dicts the API takes.

Every container built here has requests and limits, runs as a non-root user without privilege escalation
and with all capabilities dropped (the namespace enforces the `restricted` Pod Security Standard).
"""

from __future__ import annotations

import re
from typing import Any

from infra.config import Resources
from pipelines import platform_env

PART_OF = "aicash"
# Pods with this label may reach PostgreSQL, the object store and the feature server (NetworkPolicies).
PLATFORM_CLIENT = "aicash.io/platform-client"
# The settings objects' names, shared with the KFP steps that name them (pipelines.platform_env).
SETTINGS_CONFIGMAP = platform_env.SETTINGS_CONFIGMAP
SETTINGS_SECRET = platform_env.SETTINGS_SECRET
SERVICE_ACCOUNT = "aicash"
PLATFORM_UID = 10001  # the `aicash` user of the platform image (infra/Dockerfile)
AICASH_HOME = "/var/lib/aicash"  # an emptyDir: cluster mode keeps its state in PostgreSQL and S3

Obj = dict[str, Any]


def labels(name: str, component: str, *, client: bool = False) -> dict[str, str]:
    """Recommended labels; `client=True` marks a workload allowed to reach the platform's data services."""
    out = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": "pulumi",
    }
    if client:
        out[PLATFORM_CLIENT] = "true"
    return out


def selector(name: str) -> dict[str, str]:
    """The stable subset of `labels` used in selectors."""
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": PART_OF}


def meta(name: str, namespace: str, component: str, *, client: bool = False, **extra: Any) -> Obj:
    """`metadata` with an explicit name, so rendered manifests and the cluster agree."""
    return {"name": name, "namespace": namespace, "labels": labels(name, component, client=client), **extra}


def resources(res: Resources) -> Obj:
    return {
        "requests": {"cpu": res.cpu_request, "memory": res.memory_request},
        "limits": {"cpu": res.cpu_limit, "memory": res.memory_limit},
    }


def http_probe(path: str, port: int | str, *, period: int = 10, timeout: int = 5, failures: int = 3) -> Obj:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
    }


def tcp_probe(port: int | str, *, period: int = 10) -> Obj:
    return {"tcpSocket": {"port": port}, "periodSeconds": period, "timeoutSeconds": 5, "failureThreshold": 3}


def exec_probe(command: list[str], *, period: int = 10) -> Obj:
    return {"exec": {"command": command}, "periodSeconds": period, "timeoutSeconds": 5, "failureThreshold": 6}


def platform_env() -> list[Obj]:
    """The platform's settings as environment: the shared ConfigMap, then the shared Secret."""
    return [{"configMapRef": {"name": SETTINGS_CONFIGMAP}}, {"secretRef": {"name": SETTINGS_SECRET}}]


def home_volume() -> Obj:
    return {"name": "aicash-home", "emptyDir": {}}


def home_mount() -> Obj:
    return {"name": "aicash-home", "mountPath": AICASH_HOME}


def container(
    name: str,
    image: str,
    res: Resources,
    *,
    args: list[str] | None = None,
    command: list[str] | None = None,
    ports: list[Obj] | None = None,
    env: list[Obj] | None = None,
    env_from: list[Obj] | None = None,
    liveness: Obj | None = None,
    readiness: Obj | None = None,
    mounts: list[Obj] | None = None,
) -> Obj:
    """A hardened container; optional fields are left out rather than set empty."""
    spec: Obj = {
        "name": name,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "resources": resources(res),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
        },
    }
    optional = {
        "command": command,
        "args": args,
        "ports": ports,
        "env": env,
        "envFrom": env_from,
        "livenessProbe": liveness,
        "readinessProbe": readiness,
        "volumeMounts": mounts,
    }
    spec.update({key: value for key, value in optional.items() if value})
    return spec


def pod_spec(
    containers: list[Obj],
    *,
    run_as_user: int,
    service_account: str | None = SERVICE_ACCOUNT,
    fs_group: int | None = None,
    volumes: list[Obj] | None = None,
    restart_policy: str | None = None,
) -> Obj:
    """A pod spec that runs as `run_as_user` with the runtime's default seccomp profile."""
    security: Obj = {
        "runAsNonRoot": True,
        "runAsUser": run_as_user,
        "runAsGroup": run_as_user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    if fs_group is not None:
        security["fsGroup"] = fs_group
    spec: Obj = {"securityContext": security, "containers": containers}
    if service_account:
        spec["serviceAccountName"] = service_account
    if volumes:
        spec["volumes"] = volumes
    if restart_policy:
        spec["restartPolicy"] = restart_policy
    return spec


def stateful_spec(name: str, component: str, container: Obj, *, uid: int, storage_gb: int) -> Obj:
    """The spec of a one-replica StatefulSet running `container` as `uid`, with a `data` volume claim of
    `storage_gb` (PostgreSQL, MinIO and Redis in the cluster)."""
    return {
        "serviceName": name,
        "replicas": 1,
        "selector": {"matchLabels": selector(name)},
        "template": {
            "metadata": {"labels": labels(name, component)},
            "spec": pod_spec([container], run_as_user=uid, fs_group=uid, service_account=None),
        },
        "volumeClaimTemplates": [{
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": f"{storage_gb}Gi"}}},
        }],
    }


def slug(value: str, max_length: int = 40) -> str:
    """A DNS-1123 label fragment of `value` (for names that carry an image tag)."""
    text = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")
    return text[:max_length].rstrip("-") or "x"


def service_url(name: str, namespace: str, port: int, scheme: str = "http") -> str:
    return f"{scheme}://{name}.{namespace}.svc.cluster.local:{port}"
