"""`PlatformSettings`: the platform's environment, once per namespace that runs platform code.

Every workload (the Bento service, the Feast server, the jobs and the KFP steps) reads the same ConfigMap
and Secret (through `envFrom`; the KFP steps key by key, the keys of `pipelines.platform_env`, which every
namespace's objects must match), so they all see one database and one bucket. Secret values only ever travel
as Pulumi secrets into the Kubernetes Secret; nothing secret is in the ConfigMap or in a pod spec.
Each workload logs in to that database as its own login (Secret `aicash-database-logins`, one key per workload,
taken with `secretKeyRef`; KFP's namespace gets the training login as its DATABASE_URL): docs/security.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from infra import kube
from infra.component import Component
from infra.config import PlatformSettings as SettingsValues
from infra.config import SmtpConfig
from infra.database import LOGINS_SECRET
from pipelines import platform_env


@dataclass(frozen=True)
class PlatformSettingsArgs:
    """Where the database and bucket are, the training gates, the alert mail relay, the public URL, and the
    Kubeflow Pipelines API and image that training runs (POST /train, `monitor drift --retrain`) go to."""

    namespaces: tuple[str, ...]
    database_url: pulumi.Output[str]
    bucket: str
    public_url: str
    smtp_password: pulumi.Output[str]
    s3_endpoint_url: str | None = None
    aws_region: str | None = None
    access_key_id: str | None = None
    secret_access_key: pulumi.Output[str] | None = None
    role_arn: pulumi.Input[str] | None = None
    values: SettingsValues = field(default_factory=SettingsValues)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    kfp_host: str | None = None
    kfp_image: str | None = None
    redis_url: pulumi.Output[str] | None = None  # Feast's online store and the rate limits in Redis
    # The workloads' own logins (`infra.database.LOGINS` variable -> URL): Secret `aicash-database-logins` in the
    # first namespace, each workload taking its own key; and a namespace's DATABASE_URL where it is not the owner's
    # (KFP's steps: the training login).
    database_logins: dict[str, pulumi.Output[str]] = field(default_factory=dict)
    namespace_database_urls: dict[str, pulumi.Output[str]] = field(default_factory=dict)


def plain_env(args: PlatformSettingsArgs) -> dict[str, pulumi.Input[str]]:
    """The non-secret settings, by environment variable name."""
    env: dict[str, pulumi.Input[str]] = {
        "AICASH_HOME": kube.AICASH_HOME,
        "USE_S3_STORAGE": "true",
        "S3_BUCKET": args.bucket,
        **args.values.env(),  # gates, timeout, live targets, the service's limits and CORS: `aicash:settings`
        "INFERENCE_API_URL": args.public_url,
        "SMTP_HOST": args.smtp.host,
        "SMTP_PORT": str(args.smtp.port),
        "SMTP_USERNAME": args.smtp.username,
        "SMTP_STARTTLS": "true" if args.smtp.starttls else "false",
        "ALERT_EMAIL_FROM": args.smtp.sender,
        "ALERT_EMAIL_TO": args.smtp.recipients,
        "FEAST_USAGE": "False",
    }
    env["FEAST_ONLINE_STORE"] = "redis" if args.redis_url is not None else "postgres"
    # The same Redis holds the per-key rate-limit buckets, so a key's limit holds across the inference replicas.
    env["RATE_LIMIT_BACKEND"] = "redis" if args.redis_url is not None else "memory"
    if args.kfp_host:
        env["KFP_HOST"] = args.kfp_host
    if args.kfp_image:
        env["KFP_IMAGE"] = args.kfp_image
    if args.s3_endpoint_url:
        env["S3_ENDPOINT_URL"] = args.s3_endpoint_url
    if args.aws_region:
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = args.aws_region
    return env


def secret_env(args: PlatformSettingsArgs, namespace: str | None = None) -> dict[str, pulumi.Input[str]]:
    """The secret settings (of `namespace`: its DATABASE_URL may be a workload's login); static AWS keys only for
    MinIO (on AWS the IRSA role stands in)."""
    env: dict[str, pulumi.Input[str]] = {
        "DATABASE_URL": args.namespace_database_urls.get(namespace or "", args.database_url),
        "SMTP_PASSWORD": args.smtp_password,
    }
    if args.redis_url is not None:
        env["REDIS_URL"] = args.redis_url
    if args.access_key_id and args.secret_access_key is not None:
        env["AWS_ACCESS_KEY_ID"] = args.access_key_id
        env["AWS_SECRET_ACCESS_KEY"] = args.secret_access_key
    return {key: pulumi.Output.secret(value) for key, value in env.items()}


def check_step_keys(args: PlatformSettingsArgs, namespace: str) -> None:
    """KFP's steps take the settings key by key (`pipelines.platform_env`), not the whole objects: a key rendered
    here and not declared there would never reach them, and a declared required key missing would keep their pods
    from starting. Refuse both before anything is created."""
    problems = [f"ConfigMap {p}" for p in platform_env.undeclared(
        list(plain_env(args)), platform_env.CONFIG_KEYS, platform_env.OPTIONAL_CONFIG_KEYS)]
    problems += [f"Secret {p}" for p in platform_env.undeclared(
        list(secret_env(args, namespace)), platform_env.SECRET_KEYS, platform_env.OPTIONAL_SECRET_KEYS)]
    if problems:
        raise ValueError(f"the settings of namespace {namespace} differ from what KFP's steps take "
                         f"(pipelines/platform_env.py): {', '.join(problems)}")


class PlatformSettings(Component):
    """A ServiceAccount, the settings ConfigMap and the settings Secret in each namespace."""

    def __init__(self, name: str, args: PlatformSettingsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicash:platform:Settings", name, opts)
        child = self.child_opts()
        annotations = {"eks.amazonaws.com/role-arn": args.role_arn} if args.role_arn is not None else {}
        for ns in args.namespaces:
            check_step_keys(args, ns)
            k8s.core.v1.ServiceAccount(
                f"{name}-{ns}-account",
                metadata=kube.meta(kube.SERVICE_ACCOUNT, ns, "identity", annotations=annotations),
                opts=child,
            )
            k8s.core.v1.ConfigMap(
                f"{name}-{ns}-config",
                metadata=kube.meta(kube.SETTINGS_CONFIGMAP, ns, "settings"),
                data=plain_env(args),
                opts=child,
            )
            k8s.core.v1.Secret(
                f"{name}-{ns}-secret",
                metadata=kube.meta(kube.SETTINGS_SECRET, ns, "settings"),
                type="Opaque",
                string_data=secret_env(args, ns),
                opts=child,
            )
        if args.database_logins:
            k8s.core.v1.Secret(
                f"{name}-database-logins",
                metadata=kube.meta(LOGINS_SECRET, args.namespaces[0], "settings"),
                type="Opaque",
                string_data={key: pulumi.Output.secret(url) for key, url in args.database_logins.items()},
                opts=child,
            )
        self.register_outputs({"namespaces": list(args.namespaces)})
