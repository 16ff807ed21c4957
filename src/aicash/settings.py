"""Platform settings, read once from the environment (and an optional `.env`), 12-factor style.

Local mode (the default) keeps a SQLite database and files under `AICASH_HOME`; setting `DATABASE_URL`
to a PostgreSQL URL and `USE_S3_STORAGE=true` selects cluster mode. Nothing else changes between modes.
AWS credentials are never settings: boto3 finds them through its standard chain.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

Mode = Literal["local", "cluster"]


class SettingsError(ValueError):
    """A setting has an invalid value; the message names the environment variable and the fix."""


class Settings(BaseSettings):
    """Every setting of the platform; each field is read from the environment variable of its upper-case name."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    aicash_home: Path = Field(default=Path("~/.aicash"), description="Local state folder (SQLite, files).")
    database_url: SecretStr | None = Field(
        default=None, description="SQLAlchemy URL; unset means SQLite under AICASH_HOME."
    )
    admin_database_url: SecretStr | None = Field(
        default=None, description="The inference service's admin operations (POST /train, promote, rollback) connect "
        "with it: a login in aicash_training, since the service's own (DATABASE_URL, in aicash_serving) may not write "
        "models or training runs. Unset: DATABASE_URL."
    )
    use_s3_storage: bool = Field(default=False, description="Store artifacts in S3 instead of AICASH_HOME.")
    s3_bucket: str = Field(default="aicash-models", description="Bucket for models and artifacts.")
    s3_endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint (MinIO, moto).")
    model_version: str | None = Field(default=None, description="Pin serving to this model version.")
    min_training_samples: int = Field(default=100, ge=1, description="Gate: fewest training samples.")
    min_accuracy: float = Field(
        default=0.55, ge=0.0, le=1.0, description="Gate: lowest out-of-sample directional accuracy of traded signals."
    )
    min_win_rate: float = Field(default=0.45, ge=0.0, le=1.0, description="Gate: lowest win rate of traded signals.")
    max_pbo: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Gate: highest probability of backtest overfitting of a search "
        "(CSCV over the trials' returns; a single-configuration run has none)."
    )
    min_live_win_rate: float = Field(
        default=0.55, ge=0.0, le=1.0, description="Alert: lowest live win rate of a serving version's trades "
        "(the guide's trading target, > 55 %)."
    )
    min_live_confidence: float = Field(
        default=0.70, ge=0.0, le=1.0, description="Alert: lowest average confidence of a serving version's live "
        "decisions (the guide's target, > 70 %)."
    )
    ml_api_url: str | None = Field(default=None, description="Deprecated: read by nothing; accepted with a warning.")
    training_api_url: str | None = Field(
        default=None, description="Deprecated: read by nothing; accepted with a warning."
    )
    inference_api_url: str = Field(
        default="http://127.0.0.1:3000", description="Inference service base URL (the monitor scrapes its /metrics)."
    )

    feast_online_store: Literal["postgres", "redis"] = Field(
        default="postgres",
        description="Cluster mode's Feast online store. redis: the online store in Redis and the Feast registry in "
        "the bucket, so predictions keep answering while PostgreSQL is down (needs REDIS_URL, USE_S3_STORAGE).",
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description="Redis for FEAST_ONLINE_STORE=redis and RATE_LIMIT_BACKEND=redis: "
        "redis://[:password@]host:6379[/db]; rediss:// for TLS.",
    )

    kfp_host: str | None = Field(
        default=None, description="KFP API endpoint; when set, POST /train submits there instead of running locally."
    )
    kfp_image: str = Field(default="aicash-platform:0.1.0", description="Platform image of KFP-submitted runs.")
    training_timeout_seconds: int = Field(
        default=7200, ge=1, description="A training run still going after this long is stopped and recorded failed "
        "(the guide's < 2 hours): the local runner's child process is killed, a KFP run gets it as its deadline."
    )

    # Inference service
    rate_limit_per_minute: int = Field(
        default=1200, ge=1, description="Requests per key per minute: per replica (memory) or in all (redis)."
    )
    rate_limit_backend: Literal["memory", "redis"] = Field(
        default="memory",
        description="Where the per-key buckets live: memory (each replica its own) or redis (REDIS_URL, shared by "
        "all replicas; each replica's memory while Redis does not answer).",
    )
    cors_allow_origins: str = Field(default="", description="Comma-separated origins allowed by CORS.")
    prediction_cache_ttl_seconds: float = Field(
        default=5.0, ge=0, description="Identical requests within it are answered from the cache."
    )
    max_request_bytes: int = Field(default=262_144, ge=1024, description="Largest accepted request body.")
    registry_reload_seconds: float = Field(
        default=10.0, gt=0, description="How often the service picks up promotions and rollbacks."
    )
    max_feature_age_bars: int = Field(
        default=3, ge=1, description="Features are stale when their latest bar is older than this many bars of its "
        "timeframe (plus FEATURE_AGE_GRACE_SECONDS)."
    )
    feature_age_grace_seconds: float = Field(
        default=300.0, ge=0, description="Slack on top of MAX_FEATURE_AGE_BARS for ingestion and materialization."
    )
    refuse_stale_features: bool = Field(
        default=False, description="Answer 503 (with Retry-After) instead of a prediction from stale features."
    )
    # Alert email (monitoring)
    smtp_host: str | None = Field(default=None, description="SMTP server for drift reports and alerts.")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="SMTP port.")
    smtp_username: str | None = Field(default=None, description="SMTP user, if the server needs one.")
    smtp_password: SecretStr | None = Field(default=None, description="SMTP password.")
    smtp_starttls: bool = Field(default=True, description="Upgrade the SMTP connection with STARTTLS.")
    alert_email_from: str = Field(default="aicash@localhost", description="Sender of reports and alerts.")
    alert_email_to: str = Field(default="", description="Comma-separated recipients (the ML team).")

    @property
    def cors_origins(self) -> list[str]:
        return [o.strip() for o in self.cors_allow_origins.split(",") if o.strip()]

    @property
    def alert_recipients(self) -> list[str]:
        return [a.strip() for a in self.alert_email_to.split(",") if a.strip()]

    @field_validator("aicash_home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("s3_endpoint_url", "ml_api_url", "training_api_url", "inference_api_url", "kfp_host")
    @classmethod
    def _check_http_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not value.strip() and info.field_name in {"s3_endpoint_url", "kfp_host"}:
            return None  # set but empty: unset
        parsed = urlsplit(value.strip())
        if parsed.scheme not in {"http", "https"} or not parsed.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL; use e.g. http://host:3000")
        return value.strip()

    @field_validator("database_url", "admin_database_url")
    @classmethod
    def _check_database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        raw = value.get_secret_value().strip()
        if raw.startswith("postgres://"):
            raw = "postgresql://" + raw.removeprefix("postgres://")
        try:
            url = make_url(raw)
        except Exception as exc:
            raise ValueError(f"not a database URL ({exc}); use postgresql://user:pass@host:5432/db") from exc
        if url.get_backend_name() not in {"sqlite", "postgresql"}:
            raise ValueError("only postgresql:// and sqlite:/// URLs are supported")
        return SecretStr(raw)

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        parsed = urlsplit(value.get_secret_value().strip())
        if parsed.scheme not in {"redis", "rediss"} or not parsed.hostname:
            raise ValueError("not a Redis URL; use redis://[:password@]host:6379/0 (rediss:// for TLS)")
        try:
            _ = parsed.port
        except ValueError:
            raise ValueError("the port is not a number; use redis://host:6379/0") from None
        if parsed.path.strip("/") and not parsed.path.strip("/").isdigit():
            raise ValueError("the database must be a number; use redis://host:6379/0")
        if parsed.password and "," in unquote(parsed.password):
            raise ValueError("the password contains ',', which Feast's Redis connection string cannot carry: "
                             "use a password without commas")
        return SecretStr(value.get_secret_value().strip())

    @model_validator(mode="after")
    def _warn_deprecated(self) -> Settings:
        for name in DEPRECATED & self.model_fields_set:
            warnings.warn(f"{name.upper()} is deprecated and ignored (no service reads it): unset it; "
                          "INFERENCE_API_URL is the service address the platform uses", FutureWarning, stacklevel=2)
        return self

    @model_validator(mode="after")
    def _check_s3(self) -> Settings:
        if self.use_s3_storage and not self.s3_bucket:
            raise ValueError("S3_BUCKET must be set when USE_S3_STORAGE is true")
        if self.feast_online_store == "redis" and (self.redis_url is None or not self.use_s3_storage):
            raise ValueError(
                "FEAST_ONLINE_STORE=redis needs REDIS_URL (the online store) and USE_S3_STORAGE=true (the Feast "
                "registry goes to the bucket): set both, or FEAST_ONLINE_STORE=postgres"
            )
        return self

    @model_validator(mode="after")
    def _check_rate_limit_backend(self) -> Settings:
        if self.rate_limit_backend == "redis" and self.redis_url is None:
            raise ValueError("RATE_LIMIT_BACKEND=redis needs REDIS_URL (the Redis that holds the buckets): set it, "
                             "or RATE_LIMIT_BACKEND=memory")
        return self

    @property
    def mode(self) -> Mode:
        """`cluster` when the database is PostgreSQL, else `local`."""
        return "cluster" if self.database_backend == "postgresql" else "local"

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL in force: DATABASE_URL, or SQLite under AICASH_HOME."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.aicash_home / 'aicash.db'}"

    @property
    def admin_sqlalchemy_url(self) -> str:
        """The admin operations' database URL: ADMIN_DATABASE_URL, or the one in force (`sqlalchemy_url`)."""
        if self.admin_database_url is not None:
            return self.admin_database_url.get_secret_value()
        return self.sqlalchemy_url

    @property
    def database_backend(self) -> str:
        return make_url(self.sqlalchemy_url).get_backend_name()

    def masked(self) -> dict[str, str]:
        """Effective settings by environment variable name, secrets masked, for `aicash config show`."""
        shown: dict[str, str] = {"AICASH_MODE (derived)": self.mode}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name == "database_url":
                value = make_url(self.sqlalchemy_url).render_as_string(hide_password=True)
            elif name == "admin_database_url" and self.admin_database_url is not None:
                value = make_url(self.admin_sqlalchemy_url).render_as_string(hide_password=True)
            elif name == "redis_url" and self.redis_url is not None:
                value = make_url(self.redis_url.get_secret_value()).render_as_string(hide_password=True)
            elif isinstance(value, SecretStr):
                value = "********" if value.get_secret_value() else ""
            shown[name.upper()] = "" if value is None else str(value)
        return shown


DEPRECATED = frozenset({"ml_api_url", "training_api_url"})  # accepted, with a warning, since users may set them
_SECRET_NAMES = {"DATABASE_URL", "ADMIN_DATABASE_URL", "SMTP_PASSWORD", "REDIS_URL"}


def load_settings(**overrides: object) -> Settings:
    """Read the settings; raise `SettingsError` naming each offending environment variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "settings"
            got = "" if name in _SECRET_NAMES else f" (got {err.get('input')!r})"
            lines.append(f"{name}: {err['msg']}{got}")
        raise SettingsError("invalid settings:\n  " + "\n  ".join(lines)) from None
