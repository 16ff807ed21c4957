"""The feature_store YAML files as aicash fills them and as Feast's own loader fills them from `aicash features env`:
the same, valid Feast configuration for each mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from feast.infra.registry.registry import get_registry_store_class_from_type
from feast.repo_config import load_repo_config

from aicash.settings import Settings, load_settings
from features import repo
from features.config import FEATURES_DIR, cli_env, config_file, repo_config
from features.s3_registry import S3EndpointRegistryStore


def _feast_config(monkeypatch: pytest.MonkeyPatch, settings: Settings):  # type: ignore[no-untyped-def]
    """Feast's own loader (os.path.expandvars + RepoConfig) with the variables `aicash features env` exports."""
    for name, value in cli_env(settings).items():
        monkeypatch.setenv(name, value)
    return load_repo_config(FEATURES_DIR, config_file(settings))


def test_local_yaml_is_valid_for_feast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = load_settings(aicash_home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'a.db'}")
    config = _feast_config(monkeypatch, settings)
    assert config.project == repo.PROJECT
    assert config.online_store.type == "sqlite" and config.offline_store.type == "file"
    assert config.online_store.path == str(tmp_path / "home" / "features" / "online.db")  # absolute, under home
    assert config.registry.path == str(tmp_path / "home" / "features" / "registry.db")
    assert config.materialization_config.pull_latest_features
    assert repo_config(settings).model_dump() == config.model_dump()  # aicash fills the file the same way


def test_cluster_yaml_is_valid_for_feast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    url = "postgresql://svc:s3cr%40t@db.internal:6543/aicash?sslmode=verify-full"
    settings = load_settings(aicash_home=tmp_path, database_url=url)
    config = _feast_config(monkeypatch, settings)
    for part in (config.online_store, config.offline_store):
        assert part.type == "postgres" and part.host == "db.internal" and part.port == 6543
        assert (part.database, part.user, part.password) == ("aicash", "svc", "s3cr@t")
        assert part.db_schema == "feast" and part.sslmode == "verify-full"
    assert config.registry.registry_type == "sql"
    assert config.registry.path == "postgresql+psycopg://svc:s3cr%40t@db.internal:6543/aicash?sslmode=verify-full"
    assert config.registry.sqlalchemy_config_kwargs["connect_args"] == {"options": "-c search_path=feast"}
    assert config.materialization_config.pull_latest_features
    assert repo_config(settings).model_dump() == config.model_dump()

    plain = load_settings(aicash_home=tmp_path, database_url="postgresql://u@localhost/db")
    assert repo_config(plain).online_store.sslmode == "prefer"  # never Feast's default "require"


@pytest.mark.parametrize("endpoint", ["http://minio:9000", None])
def test_cluster_redis_registry_reaches_the_configured_endpoint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str | None
) -> None:
    """The registry's S3 endpoint comes from the settings through the YAML file, not from FEAST_S3_ENDPOINT_URL."""
    monkeypatch.delenv("FEAST_S3_ENDPOINT_URL", raising=False)
    settings = load_settings(
        aicash_home=tmp_path, database_url="postgresql://svc:pw@db.internal/aicash", use_s3_storage=True,
        s3_bucket="models", s3_endpoint_url=endpoint, feast_online_store="redis", redis_url="redis://:pw@cache:6379/0",
    )
    config = _feast_config(monkeypatch, settings)
    assert repo_config(settings).model_dump() == config.model_dump()
    assert config.registry.path == "s3://models/feast/registry.db"
    assert (config.online_store.type, config.online_store.connection_string) == ("redis", "cache:6379,db=0,password=pw")
    assert get_registry_store_class_from_type(config.registry.registry_store_type) is S3EndpointRegistryStore
    monkeypatch.setenv("FEAST_S3_ENDPOINT_URL", "http://elsewhere:9000")  # ignored
    client = S3EndpointRegistryStore(config.registry, FEATURES_DIR).s3_client.meta.client
    if endpoint is None:
        assert client.meta.endpoint_url.endswith(".amazonaws.com")  # boto3's own AWS endpoint
    else:
        assert client.meta.endpoint_url == endpoint
