"""Which Feast configuration the settings select, filled from the settings: Feast's `RepoConfig` for aicash, and
the environment for Feast's own CLI.

The configuration follows `settings.mode`: `feature_store.local.yaml`, `feature_store.cluster.yaml` or
`feature_store.cluster-redis.yaml` beside this file, with their `${...}` variables filled from the settings
(`feast_env`), exactly as Feast's own loader fills them from the environment (so
`eval "$(aicash features env)"; feast apply` reads the same configuration).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import yaml
from sqlalchemy.engine import make_url

from aicash.settings import Settings

if TYPE_CHECKING:
    from feast.repo_config import RepoConfig

FEATURES_DIR = Path(__file__).resolve().parent  # the feature repository: Feast's repo_path
CONFIG_FILES = {
    "local": FEATURES_DIR / "feature_store.local.yaml",
    "cluster": FEATURES_DIR / "feature_store.cluster.yaml",
    "cluster-redis": FEATURES_DIR / "feature_store.cluster-redis.yaml",
}
_VARIABLE = re.compile(r"\$(\w+|\{[^}]*\})")


def config_name(settings: Settings) -> str:
    """`local`, `cluster` (everything in PostgreSQL) or `cluster-redis` (online store in Redis, registry in S3)."""
    if settings.mode == "cluster" and settings.feast_online_store == "redis":
        return "cluster-redis"
    return settings.mode


def config_file(settings: Settings) -> Path:
    """The feature_store YAML file of the settings' mode."""
    return CONFIG_FILES[config_name(settings)]


def redis_connection_string(redis_url: str) -> str:
    """REDIS_URL (redis://[:password@]host:port[/db], rediss:// for TLS) as Feast's `host:port,db=N,...` string."""
    parts = urlsplit(redis_url)
    fields = [f"{parts.hostname}:{parts.port or 6379}", f"db={parts.path.strip('/') or 0}"]
    if parts.password:
        fields.append(f"password={unquote(parts.password)}")
    if parts.scheme == "rediss":
        fields.append("ssl=true")
    return ",".join(fields)


def feast_env(settings: Settings) -> dict[str, str]:
    """The `${...}` variables the mode's YAML file references, derived from the settings."""
    if settings.mode == "local":
        return {"AICASH_HOME": str(settings.aicash_home)}
    url = make_url(settings.sqlalchemy_url)
    query = {k: v if isinstance(v, str) else v[0] for k, v in url.query.items()}
    env = {
        "AICASH_PG_HOST": url.host or query.get("host", "localhost"),
        "AICASH_PG_PORT": str(url.port or query.get("port", 5432)),
        "AICASH_PG_DATABASE": url.database or "postgres",
        "AICASH_PG_USER": url.username or "postgres",
        "AICASH_PG_PASSWORD": url.password or "",
        "AICASH_PG_SSLMODE": query.get("sslmode", "prefer"),
        "AICASH_FEAST_REGISTRY_URL": url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False),
    }
    if config_name(settings) == "cluster-redis" and settings.redis_url is not None:
        env["AICASH_S3_BUCKET"] = settings.s3_bucket
        env["AICASH_S3_ENDPOINT_URL"] = settings.s3_endpoint_url or ""  # empty: AWS (see features/s3_registry.py)
        env["AICASH_REDIS_CONNECTION"] = redis_connection_string(settings.redis_url.get_secret_value())
    return env


def cli_env(settings: Settings) -> dict[str, str]:
    """Environment for Feast's own CLI: the YAML variables, the file to use, the repository folder, and the
    settings that `repo.py` reads (AICASH_HOME, DATABASE_URL)."""
    env = {"AICASH_HOME": str(settings.aicash_home), **feast_env(settings)}
    if settings.database_url is not None:
        env["DATABASE_URL"] = settings.database_url.get_secret_value()
    env["FEAST_FS_YAML_FILE_PATH"] = str(config_file(settings))
    env["FEATURE_REPO_DIR_ENV_VAR"] = str(FEATURES_DIR)  # Feast's name for `feast --chdir`
    return env


def render_config(settings: Settings) -> str:
    """The mode's YAML text with its variables filled (os.path.expandvars semantics: unknown ones stay)."""
    values = feast_env(settings)

    def fill(match: re.Match[str]) -> str:
        name = match.group(1).strip("{}")
        return values.get(name, match.group(0))

    return _VARIABLE.sub(fill, config_file(settings).read_text())


def repo_config(settings: Settings) -> RepoConfig:
    """The Feast configuration of the settings' mode, validated by Feast's own `RepoConfig`."""
    from feast.repo_config import RepoConfig

    config = RepoConfig(**yaml.safe_load(render_config(settings)))
    config.repo_path = FEATURES_DIR
    return config
