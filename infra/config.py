"""Typed stack configuration: everything `__main__.py` reads from `Pulumi.<stack>.yaml`, checked once.

Plain values live in the stack file; secrets are Pulumi secrets (`pulumi config set --secret ...`) and stay
`Output`s from here to the Kubernetes Secrets, so they never appear in plain text in the program or state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar

import pulumi

PROJECT = "aicash"
Cloud = Literal["local", "aws"]

# Secrets each stack needs; `aicash infra render` stands in placeholders for them.
SECRET_KEYS: dict[str, tuple[str, ...]] = {
    "local": ("dbPassword", "smtpPassword", "minioPassword", "redisPassword"),
    "aws": ("dbPassword", "smtpPassword", "redisPassword"),
}


class ConfigError(ValueError):
    """A stack config value is missing or invalid; the message names the `aicash:` key."""


@dataclass(frozen=True)
class Resources:
    """Container requests and limits (Kubernetes quantities)."""

    cpu_request: str = "250m"
    memory_request: str = "256Mi"
    cpu_limit: str = "1"
    memory_limit: str = "512Mi"


@dataclass(frozen=True)
class InferenceConfig:
    """The Bento service: replicas between `min_replicas` and `max_replicas`, scaled on CPU."""

    min_replicas: int = 2
    max_replicas: int = 6
    cpu_target_percent: int = 70
    run_as_user: int = 1034  # the uid `bentoml containerize` gives the bentoml user
    cpu_request: str = "500m"
    memory_request: str = "768Mi"
    cpu_limit: str = "2"
    memory_limit: str = "1536Mi"

    def __post_init__(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise ConfigError(
                f"aicash:inference: need 1 <= minReplicas <= maxReplicas (got {self.min_replicas}, {self.max_replicas})"
            )
        if not 1 <= self.cpu_target_percent <= 100:
            raise ConfigError("aicash:inference: cpuTargetPercent must be within 1..100")

    @property
    def resources(self) -> Resources:
        return Resources(self.cpu_request, self.memory_request, self.cpu_limit, self.memory_limit)


@dataclass(frozen=True)
class IngressConfig:
    """How the inference service is exposed: an ingress class, its controller's namespace, TLS."""

    class_name: str = "nginx"
    controller_namespace: str = "ingress-nginx"
    cluster_issuer: str | None = None  # cert-manager ClusterIssuer; else `tls_secret_name` must exist
    tls_secret_name: str = "aicash-inference-tls"  # noqa: S105 - a Secret's name


@dataclass(frozen=True)
class PlatformSettings:
    """Training gates and the pinned model version: the platform's non-secret settings."""

    model_version: str | None = None
    min_training_samples: int = 100
    min_accuracy: float = 0.55
    min_win_rate: float = 0.45


@dataclass(frozen=True)
class SmtpConfig:
    """Mail relay for alerts; the password is the `aicash:smtpPassword` secret."""

    host: str = "smtp.example.com"
    port: int = 587
    username: str = "aicash-alerts"
    starttls: bool = True
    sender: str = "aicash-alerts@example.com"
    recipients: str = "platform-team@example.com"


@dataclass(frozen=True)
class MonitoringConfig:
    """Cron schedules (UTC) of the drift report, the alert check, the canary judgement and the KFP run sync, and
    what the jobs may change: `retrain_on_drift` submits the training pipeline to KFP when drift is detected (the
    new version still has to pass the gate and be promoted), `canary_apply` lets the canary job promote or roll
    back, `kfp_sync` runs the job that reads KFP's run outcomes into `training_runs` (off: the alert check still
    syncs them on its own schedule)."""

    drift_schedule: str = "0 6 * * *"
    check_schedule: str = "*/15 * * * *"
    canary_schedule: str = "30 * * * *"
    kfp_sync_schedule: str = "*/5 * * * *"
    retrain_on_drift: bool = True
    canary_apply: bool = True
    kfp_sync: bool = True


@dataclass(frozen=True)
class DatabaseConfig:
    """PostgreSQL: in the cluster for `local`, RDS for `aws`."""

    name: str = "aicash"
    username: str = "aicash"
    engine_version: str = "16"
    image: str = "postgres:16.4-bookworm"  # local only
    storage_gb: int = 20
    instance_class: str = "db.t4g.medium"  # aws only
    backup_retention_days: int = 7
    multi_az: bool = True


@dataclass(frozen=True)
class OnlineStoreConfig:
    """Feast's online store: `redis` (a Redis StatefulSet in the namespace; predictions keep answering while
    PostgreSQL is down) or `postgres` (in the platform database, no Redis to run)."""

    type: Literal["redis", "postgres"] = "redis"
    image: str = "redis:7.4.1-bookworm"
    storage_gb: int = 2
    cpu_request: str = "100m"
    memory_request: str = "256Mi"
    cpu_limit: str = "1"
    memory_limit: str = "512Mi"

    def __post_init__(self) -> None:
        if self.type not in ("redis", "postgres"):
            raise ConfigError(f"aicash:onlineStore: type must be 'redis' or 'postgres', got {self.type!r}")


@dataclass(frozen=True)
class StorageConfig:
    """The bucket for models and artifacts; MinIO stands in for S3 on `local`."""

    bucket: str = "aicash-models"
    minio_image: str = "minio/minio:RELEASE.2024-10-13T13-34-11Z"
    mc_image: str = "minio/mc:RELEASE.2024-10-08T09-37-26Z"
    minio_user: str = "aicash"
    storage_gb: int = 20


@dataclass(frozen=True)
class KfpConfig:
    """Kubeflow Pipelines: the upstream manifests' release and the namespace it runs in."""

    version: str = "2.17.1"  # backend release matching the kfp SDK pinned in pyproject
    namespace: str = "kubeflow"


@dataclass(frozen=True)
class EksConfig:
    """The production cluster: Kubernetes version, VPC and managed node group."""

    version: str = "1.30"
    vpc_cidr: str = "10.40.0.0/16"
    instance_types: tuple[str, ...] = ("m6i.large",)
    min_nodes: int = 2
    desired_nodes: int = 3
    max_nodes: int = 6
    public_access_cidrs: tuple[str, ...] = ("0.0.0.0/0",)


@dataclass(frozen=True)
class StackConfig:
    """The whole stack configuration; secrets are `pulumi.Output`s marked secret."""

    stack: str
    cloud: Cloud
    namespace: str
    image_tag: str
    platform_image: str
    bento_image: str
    host: str
    db_password: pulumi.Output[str]
    smtp_password: pulumi.Output[str]
    minio_password: pulumi.Output[str] | None = None
    redis_password: pulumi.Output[str] | None = None  # with onlineStore type redis
    kube_context: str | None = None
    aws_region: str | None = None
    install_addons: bool = False
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    ingress: IngressConfig = field(default_factory=IngressConfig)
    settings: PlatformSettings = field(default_factory=PlatformSettings)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    online_store: OnlineStoreConfig = field(default_factory=OnlineStoreConfig)
    kfp: KfpConfig = field(default_factory=KfpConfig)
    eks: EksConfig = field(default_factory=EksConfig)

    def image(self, repository: str) -> str:
        """`repository:imageTag`: every workload runs the release tag, never `latest`."""
        return f"{repository}:{self.image_tag}"


T = TypeVar("T")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def build(cls: type[T], raw: Mapping[str, Any] | None, key: str) -> T:
    """A config dataclass from a structured value with camelCase keys; unknown keys are errors."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for name, value in (raw or {}).items():
        snake = {"from": "sender", "to": "recipients"}.get(name, _snake(name))
        if snake not in known:
            raise ConfigError(f"aicash:{key}: unknown field {name!r}")
        kwargs[snake] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)


def check_image_tag(tag: str) -> str:
    """Refuse a moving or malformed tag: rollbacks need every release pinned."""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", tag) or tag == "latest":
        raise ConfigError(f"aicash:imageTag: {tag!r} is not a pinned image tag (no 'latest')")
    return tag


def load_config() -> StackConfig:
    """Read and check the current stack's `aicash:` configuration."""
    cfg = pulumi.Config(PROJECT)
    cloud = cfg.get("cloud") or "local"
    if cloud not in SECRET_KEYS:
        raise ConfigError(f"aicash:cloud: expected 'local' or 'aws', got {cloud!r}")
    online_store = build(OnlineStoreConfig, cfg.get_object("onlineStore"), "onlineStore")
    return StackConfig(
        stack=pulumi.get_stack(),
        cloud=cloud,  # type: ignore[arg-type]
        namespace=cfg.get("namespace") or "aicash",
        image_tag=check_image_tag(cfg.require("imageTag")),
        platform_image=cfg.require("platformImage"),
        bento_image=cfg.require("bentoImage"),
        host=cfg.require("host"),
        db_password=cfg.require_secret("dbPassword"),
        smtp_password=cfg.require_secret("smtpPassword"),
        minio_password=cfg.require_secret("minioPassword") if cloud == "local" else None,
        redis_password=cfg.require_secret("redisPassword") if online_store.type == "redis" else None,
        kube_context=cfg.get("kubeContext"),
        aws_region=pulumi.Config("aws").require("region") if cloud == "aws" else None,
        install_addons=cfg.get_bool("installAddons") or False,
        inference=build(InferenceConfig, cfg.get_object("inference"), "inference"),
        ingress=build(IngressConfig, cfg.get_object("ingress"), "ingress"),
        settings=build(PlatformSettings, cfg.get_object("settings"), "settings"),
        smtp=build(SmtpConfig, cfg.get_object("smtp"), "smtp"),
        monitoring=build(MonitoringConfig, cfg.get_object("monitoring"), "monitoring"),
        database=build(DatabaseConfig, cfg.get_object("database"), "database"),
        storage=build(StorageConfig, cfg.get_object("storage"), "storage"),
        online_store=online_store,
        kfp=build(KfpConfig, cfg.get_object("kfp"), "kfp"),
        eks=build(EksConfig, cfg.get_object("eks"), "eks"),
    )
