"""`PlatformSettings`: the platform's environment, once per namespace that runs platform code.

Every workload (the Bento service, the Feast server, the jobs and the KFP steps) reads the same ConfigMap
and Secret through `envFrom`, so they all see one database and one bucket. Secret values only ever travel
as Pulumi secrets into the Kubernetes Secret; nothing secret is in the ConfigMap or in a pod spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from infra import kube
from infra.component import Component
from infra.config import PlatformSettings as SettingsValues
from infra.config import SmtpConfig


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


def plain_env(args: PlatformSettingsArgs) -> dict[str, pulumi.Input[str]]:
    """The non-secret settings, by environment variable name."""
    env: dict[str, pulumi.Input[str]] = {
        "AICASH_HOME": kube.AICASH_HOME,
        "USE_S3_STORAGE": "true",
        "S3_BUCKET": args.bucket,
        "MIN_TRAINING_SAMPLES": str(args.values.min_training_samples),
        "MIN_ACCURACY": str(args.values.min_accuracy),
        "MIN_WIN_RATE": str(args.values.min_win_rate),
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
    if args.values.model_version:
        env["MODEL_VERSION"] = args.values.model_version
    if args.s3_endpoint_url:
        env["S3_ENDPOINT_URL"] = args.s3_endpoint_url
    if args.aws_region:
        env["AWS_REGION"] = env["AWS_DEFAULT_REGION"] = args.aws_region
    return env


def secret_env(args: PlatformSettingsArgs) -> dict[str, pulumi.Input[str]]:
    """The secret settings; static AWS keys only for MinIO (on AWS the IRSA role stands in)."""
    env: dict[str, pulumi.Input[str]] = {
        "DATABASE_URL": args.database_url,
        "SMTP_PASSWORD": args.smtp_password,
    }
    if args.redis_url is not None:
        env["REDIS_URL"] = args.redis_url
    if args.access_key_id and args.secret_access_key is not None:
        env["AWS_ACCESS_KEY_ID"] = args.access_key_id
        env["AWS_SECRET_ACCESS_KEY"] = args.secret_access_key
    return {key: pulumi.Output.secret(value) for key, value in env.items()}


class PlatformSettings(Component):
    """A ServiceAccount, the settings ConfigMap and the settings Secret in each namespace."""

    def __init__(self, name: str, args: PlatformSettingsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicash:platform:Settings", name, opts)
        child = self.child_opts()
        annotations = {"eks.amazonaws.com/role-arn": args.role_arn} if args.role_arn is not None else {}
        for ns in args.namespaces:
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
                string_data=secret_env(args),
                opts=child,
            )
        self.register_outputs({"namespaces": list(args.namespaces)})
