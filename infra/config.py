"""Typed stack configuration: everything `__main__.py` reads from `Pulumi.<stack>.yaml`, checked once.

Plain values live in the stack file; secrets are Pulumi secrets (`pulumi config set --secret ...`) and stay
`Output`s from here to the Kubernetes Secrets, so they never appear in plain text in the program or state.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

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
    """The platform's settings a stack sets (`aicash:settings`, camelCase keys): each field is the aicash setting of
    its upper-case name (docs/settings.md) with aicash's default, and goes into the settings ConfigMap as that
    environment variable. What the stack itself decides (database, bucket, Redis, KFP, mail) is not here."""

    model_version: str | None = None  # unset: serve the registry's production version
    # the training gate
    min_training_samples: int = 100
    min_accuracy: float = 0.55
    min_win_rate: float = 0.45
    max_pbo: float = 0.5
    training_timeout_seconds: int = 7200  # the guide's "< 2 hours"
    # the guide's live targets, alerted
    min_live_win_rate: float = 0.55
    min_live_confidence: float = 0.70
    # the inference service
    rate_limit_per_minute: int = 1200
    cors_allow_origins: str | tuple[str, ...] = ""  # the frontend's origin(s): a string "a,b" or a list
    prediction_cache_ttl_seconds: float = 5.0
    max_request_bytes: int = 262_144
    registry_reload_seconds: float = 10.0
    max_feature_age_bars: int = 3
    feature_age_grace_seconds: float = 300.0
    refuse_stale_features: bool = False

    def env(self) -> dict[str, str]:
        """Each set field as its environment variable (unset or empty: left out, aicash's default applies): booleans
        `true`/`false`, origin lists comma-separated."""
        return {f.name.upper(): _env_value(getattr(self, f.name)) for f in fields(self)
                if getattr(self, f.name) not in (None, "", ())}


def _env_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


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
class ObservabilityConfig:
    """The monitoring stack (kube-prometheus-stack) the program installs in `namespace`; `install: false` where the
    cluster already runs one (then load the rules from the ConfigMap `aicash-alert-rules`)."""

    install: bool = True
    namespace: str = "monitoring"
    retention: str = "15d"
    grafana: bool = True


@dataclass(frozen=True)
class IngestSchedule:
    """`aicash data ingest --from SOURCE`, then `aicash features materialize --incremental`, in one CronJob. A SQL
    source takes `table` or `query` and `columns` (`TARGET=SOURCE`, as `--column`); its URL carries no password
    (the secret `aicash:ingestSourcePassword` reaches the job as PGPASSWORD).
    `source_cidrs`: where a source outside the cluster lives, opened on `source_port` for this job only (S3 and
    other HTTPS sources need nothing: every platform workload may leave on 443)."""

    KEY = "schedules.ingest"
    enabled: bool = False  # nothing to read from until a stack names its source
    schedule: str = "5 * * * *"  # 5 minutes past each hourly bar
    source: str = ""
    table: str | None = None
    query: str | None = None
    columns: tuple[str, ...] = ()
    symbol: str | None = None
    timeframe: str | None = None
    source_cidrs: tuple[str, ...] = ()
    source_port: int = 5432

    def __post_init__(self) -> None:
        check_cron(self.schedule, f"{self.KEY}.schedule")
        if not self.enabled:
            return
        parts = urlsplit(self.source)
        if not self.source or "://" not in self.source:
            raise ConfigError(f"aicash:{self.KEY}.source: an s3://bucket/prefix/ or a database URL is required "
                              "while the job is enabled (or set enabled: false)")
        if parts.password:
            raise ConfigError(f"aicash:{self.KEY}.source: no password in the URL (it is visible in the CronJob): "
                              "set it as the secret aicash:ingestSourcePassword")


@dataclass(frozen=True)
class TrainingSchedule:
    """The weekly `lstm-training` run: a KFP recurring run named `name`, which a Job reconciles at `pulumi up`
    (`aicash pipeline schedule --reconcile`); `enabled: false` deletes it from KFP."""

    KEY = "schedules.training"
    enabled: bool = True
    schedule: str = "0 3 * * 0"  # Sundays 03:00 UTC, while FX markets are closed
    name: str = "aicash-lstm-training"
    symbols: tuple[str, ...] = ("EURUSD",)
    timeframe: str = "1h"

    def __post_init__(self) -> None:
        check_cron(self.schedule, f"{self.KEY}.schedule")
        if not self.symbols:
            raise ConfigError(f"aicash:{self.KEY}.symbols: name at least one symbol")


@dataclass(frozen=True)
class SignalWeightsSchedule:
    """The weekly `signal-weights` optimization, from backtests and (`use_trades`) the real trades, in a CronJob."""

    KEY = "schedules.signalWeights"
    enabled: bool = True
    schedule: str = "0 4 * * 6"  # Saturdays 04:00 UTC, after the week's trades closed
    symbols: tuple[str, ...] = ("EURUSD",)
    timeframe: str = "1h"
    use_trades: bool = True

    def __post_init__(self) -> None:
        check_cron(self.schedule, f"{self.KEY}.schedule")
        if not self.symbols:
            raise ConfigError(f"aicash:{self.KEY}.symbols: name at least one symbol")


@dataclass(frozen=True)
class SchedulesConfig:
    """The platform's own loop (`aicash:schedules`): ingestion and materialization, training, signal weights."""

    ingest: IngestSchedule = field(default_factory=IngestSchedule)
    training: TrainingSchedule = field(default_factory=TrainingSchedule)
    signal_weights: SignalWeightsSchedule = field(default_factory=SignalWeightsSchedule)


SCHEDULED_JOBS: dict[str, type] = {"ingest": IngestSchedule, "training": TrainingSchedule,
                                   "signalWeights": SignalWeightsSchedule}


def build_schedules(raw: Mapping[str, Any] | None) -> SchedulesConfig:
    """`aicash:schedules` with one block per job (each optional); an unknown job is an error."""
    unknown = sorted(set(raw or {}) - set(SCHEDULED_JOBS))
    if unknown:
        raise ConfigError(f"aicash:schedules: unknown job {unknown[0]!r} (one of {', '.join(SCHEDULED_JOBS)})")
    return SchedulesConfig(**{_snake(key): build(cls, (raw or {}).get(key), f"schedules.{key}")
                              for key, cls in SCHEDULED_JOBS.items()})


CRON_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
               "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
# (name, low, high, names) of the five fields of a Kubernetes CronJob schedule (robfig/cron's standard parser)
CRON_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")),
    ("day of week", 0, 6, ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")),
)
CRON_ITEM = re.compile(r"(?:(\*|\?)|(\w+)(?:-(\w+))?)(?:/(\d+))?")


def check_cron(expression: str, key: str) -> str:
    """A five-field cron expression (or @hourly, @daily, ...) as a CronJob takes it; else `ConfigError` naming the
    `aicash:` key, the field and the accepted range, at `pulumi preview`/`up` rather than from the API server."""
    parts = CRON_MACROS.get(expression.strip(), expression).split()
    if len(parts) != len(CRON_FIELDS):
        raise ConfigError(f"aicash:{key}: {expression!r} is not a cron expression: 5 fields (minute hour "
                          "day-of-month month day-of-week, e.g. '5 * * * *') or @hourly, @daily, @weekly, @monthly")
    for text, (name, low, high, names) in zip(parts, CRON_FIELDS, strict=True):
        for item in text.split(","):
            if not _cron_item_ok(item.upper(), low, high, names, wildcard_q=name.startswith("day")):
                raise ConfigError(f"aicash:{key}: {expression!r}: bad {name} {item!r} (values {low}-{high}"
                                  + (f" or {names[0]}-{names[-1]}" if names else "") + ", with * , - /)")
    return expression


def _cron_item_ok(item: str, low: int, high: int, names: tuple[str, ...], *, wildcard_q: bool) -> bool:
    match = CRON_ITEM.fullmatch(item)
    if match is None:
        return False
    star, first, last, step = match.groups()
    if (star == "?" and not wildcard_q) or (step is not None and int(step) < 1):
        return False
    if star:
        return True

    def value(text: str) -> int | None:
        number = names.index(text) + low if text in names else (int(text) if text.isdigit() else None)
        return number if number is not None and low <= number <= high else None

    start, end = value(first), value(last) if last is not None else None
    return start is not None and (last is None or end is not None and start <= end)


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
    ingest_source_password: pulumi.Output[str] | None = None  # a SQL ingest source's, as PGPASSWORD
    kube_context: str | None = None
    aws_region: str | None = None
    install_addons: bool = False
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    ingress: IngressConfig = field(default_factory=IngressConfig)
    settings: PlatformSettings = field(default_factory=PlatformSettings)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    observability: ObservabilityConfig = field(default_factory=ObservabilityConfig)
    schedules: SchedulesConfig = field(default_factory=SchedulesConfig)
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
        ingest_source_password=cfg.get_secret("ingestSourcePassword"),
        kube_context=cfg.get("kubeContext"),
        aws_region=pulumi.Config("aws").require("region") if cloud == "aws" else None,
        install_addons=cfg.get_bool("installAddons") or False,
        inference=build(InferenceConfig, cfg.get_object("inference"), "inference"),
        ingress=build(IngressConfig, cfg.get_object("ingress"), "ingress"),
        settings=build(PlatformSettings, cfg.get_object("settings"), "settings"),
        smtp=build(SmtpConfig, cfg.get_object("smtp"), "smtp"),
        monitoring=build(MonitoringConfig, cfg.get_object("monitoring"), "monitoring"),
        observability=build(ObservabilityConfig, cfg.get_object("observability"), "observability"),
        schedules=build_schedules(cfg.get_object("schedules")),
        database=build(DatabaseConfig, cfg.get_object("database"), "database"),
        storage=build(StorageConfig, cfg.get_object("storage"), "storage"),
        online_store=online_store,
        kfp=build(KfpConfig, cfg.get_object("kfp"), "kfp"),
        eks=build(EksConfig, cfg.get_object("eks"), "eks"),
    )
