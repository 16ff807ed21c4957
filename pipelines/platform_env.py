"""The platform settings a KFP step takes from its namespace: the ConfigMap and Secret the Pulumi program writes
there (`infra.platform_settings`) and their keys, written once for both sides.

The steps name every key (KFP's `configMapAsEnv`/`secretAsEnv` have no `envFrom`), so the Pulumi program refuses
to render a key that is not listed here, and a listed required key it does not render: what a step reads is exactly
what the namespace holds. Plain constants, no KFP or Pulumi import: both sides import this module.
"""

from __future__ import annotations

SETTINGS_CONFIGMAP = "aicash-settings"
SETTINGS_SECRET = "aicash-secrets"  # noqa: S105 - a Secret's name

# In every stack's ConfigMap: a step's pod does not start without them (no silent fall-back to local SQLite).
CONFIG_KEYS: tuple[str, ...] = (
    "AICASH_HOME", "USE_S3_STORAGE", "S3_BUCKET",
    "MIN_TRAINING_SAMPLES", "MIN_ACCURACY", "MIN_WIN_RATE", "MAX_PBO", "TRAINING_TIMEOUT_SECONDS",
    "MIN_LIVE_WIN_RATE", "MIN_LIVE_CONFIDENCE",
    "RATE_LIMIT_PER_MINUTE", "PREDICTION_CACHE_TTL_SECONDS", "MAX_REQUEST_BYTES", "REGISTRY_RELOAD_SECONDS",
    "MAX_FEATURE_AGE_BARS", "FEATURE_AGE_GRACE_SECONDS", "REFUSE_STALE_FEATURES",
    "INFERENCE_API_URL", "SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_STARTTLS",
    "ALERT_EMAIL_FROM", "ALERT_EMAIL_TO", "FEAST_USAGE", "FEAST_ONLINE_STORE", "RATE_LIMIT_BACKEND",
)
# Only where a stack sets them (a pinned model, CORS origins, KFP itself, MinIO's endpoint, the AWS region):
# taken as optional, so a stack without them still starts its steps.
OPTIONAL_CONFIG_KEYS: tuple[str, ...] = (
    "MODEL_VERSION", "CORS_ALLOW_ORIGINS", "KFP_HOST", "KFP_IMAGE",
    "S3_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION",
)
# DATABASE_URL is the namespace's own: in KFP's namespace the training login (aicash_pipelines), not the owner.
SECRET_KEYS: tuple[str, ...] = ("DATABASE_URL", "SMTP_PASSWORD")
# Redis where the stack has one; static S3 keys only for MinIO (on AWS the IRSA role stands in).
OPTIONAL_SECRET_KEYS: tuple[str, ...] = ("REDIS_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def undeclared(keys: set[str] | list[str], required: tuple[str, ...], optional: tuple[str, ...]) -> list[str]:
    """What is wrong with a rendered set of `keys` against the declared ones: each missing required key and each
    key not declared at all, as readable lines (empty when the keys fit)."""
    present = set(keys)
    return ([f"missing {key}" for key in required if key not in present]
            + [f"not declared {key}" for key in sorted(present - set(required) - set(optional))])
