"""Settings: defaults, environment, .env, validation naming the variable, masked secrets."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from aicash.settings import SettingsError, load_settings


def test_defaults_are_local_mode(clean_env: Path) -> None:
    s = load_settings()
    assert s.mode == "local"
    assert s.sqlalchemy_url == f"sqlite:///{clean_env / 'home' / 'aicash.db'}"
    assert (s.min_training_samples, s.min_accuracy, s.min_win_rate) == (100, 0.55, 0.45)
    assert s.use_s3_storage is False
    assert (s.max_feature_age_bars, s.feature_age_grace_seconds, s.refuse_stale_features) == (3, 300.0, False)


def test_postgres_url_selects_cluster_mode(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://u:pw@db:5432/aicash")
    s = load_settings()
    assert s.mode == "cluster"
    assert s.sqlalchemy_url == "postgresql://u:pw@db:5432/aicash"  # the old scheme is normalized


def test_dotenv_is_read(clean_env: Path) -> None:
    (clean_env / ".env").write_text("MIN_ACCURACY=0.6\nUSE_S3_STORAGE=true\nS3_BUCKET=models\n")
    s = load_settings()
    assert s.min_accuracy == 0.6 and s.use_s3_storage and s.s3_bucket == "models"


@pytest.mark.parametrize(
    ("name", "value"),
    [("MIN_ACCURACY", "high"), ("MIN_WIN_RATE", "1.5"), ("MIN_TRAINING_SAMPLES", "0"), ("MAX_PBO", "1.5"),
     ("USE_S3_STORAGE", "perhaps"), ("DATABASE_URL", "mysql://u:topsecret@h/db"),
     ("INFERENCE_API_URL", "inference:3000"), ("ML_API_URL", ""), ("S3_ENDPOINT_URL", "ftp://minio:9000"),
     ("KFP_HOST", "ml-pipeline"), ("MAX_FEATURE_AGE_BARS", "0"), ("FEATURE_AGE_GRACE_SECONDS", "-1"),
     ("REFUSE_STALE_FEATURES", "sometimes")],
)
def test_invalid_value_names_the_variable(clean_env: Path, monkeypatch: pytest.MonkeyPatch, name, value) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert name in str(err.value)
    assert "topsecret" not in str(err.value)


def test_masked_hides_the_database_password(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://svc:s3cr3t-pw@db:5432/aicash")
    shown = load_settings().masked()
    assert "s3cr3t-pw" not in " ".join(shown.values())
    assert shown["DATABASE_URL"] == "postgresql://svc:***@db:5432/aicash"


def test_config_show_cli_masks_secrets_and_bad_value_exits_2(clean_env: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from aicash.cli.main import app

    monkeypatch.setenv("DATABASE_URL", "postgresql://svc:s3cr3t-pw@db:5432/aicash")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEKEY1234")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value")
    result = CliRunner().invoke(app, ["config", "show"], terminal_width=200)
    assert result.exit_code == 0
    assert "cluster" in result.stdout and "postgresql://svc:***@db:5432/aicash" in result.stdout
    assert "env (access key ****1234)" in result.stdout
    for secret in ("s3cr3t-pw", "AKIAEXAMPLEKEY1234", "aws-secret-value"):
        assert secret not in result.stdout + result.stderr

    monkeypatch.setenv("MIN_ACCURACY", "lots")
    bad = CliRunner().invoke(app, ["config", "show"])
    assert bad.exit_code == 2 and "MIN_ACCURACY" in bad.stderr


def test_redis_online_store_needs_its_url_and_the_bucket(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEAST_ONLINE_STORE", "redis")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert all(name in str(err.value) for name in ("FEAST_ONLINE_STORE", "REDIS_URL", "USE_S3_STORAGE"))
    monkeypatch.setenv("FEAST_ONLINE_STORE", "memcached")
    with pytest.raises(SettingsError, match="FEAST_ONLINE_STORE"):
        load_settings()


@pytest.mark.parametrize(
    "url", ["http://cache:6379", "redis://", "redis://:pw@cache:port/0", "redis://cache/x", "redis://:pw%2Cx@cache"]
)
def test_bad_redis_url_names_the_variable_not_the_password(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "REDIS_URL" in str(err.value) and ":pw@" not in str(err.value)


def test_redis_settings_select_the_redis_feature_store(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from features.config import cli_env, config_name, feast_env, redis_connection_string

    for name, value in {"DATABASE_URL": "postgresql://u:p@db:5432/aicash", "USE_S3_STORAGE": "true",
                        "S3_BUCKET": "models", "S3_ENDPOINT_URL": "http://minio:9000", "FEAST_ONLINE_STORE": "redis",
                        "REDIS_URL": "rediss://:s3cr%40t@cache:6380/2"}.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert config_name(s) == "cluster-redis"
    assert feast_env(s)["AICASH_REDIS_CONNECTION"] == "cache:6380,db=2,password=s3cr@t,ssl=true"
    assert feast_env(s)["AICASH_S3_BUCKET"] == "models"
    env = cli_env(s)  # what `eval "$(aicash features env)"; feast serve` runs with (the feature server's pod)
    assert env["FEAST_FS_YAML_FILE_PATH"].endswith("feature_store.cluster-redis.yaml")
    assert env["AICASH_S3_ENDPOINT_URL"] == "http://minio:9000"  # the registry's endpoint (features/s3_registry.py)
    assert s.masked()["REDIS_URL"] == "rediss://:***@cache:6380/2"
    assert redis_connection_string("redis://cache") == "cache:6379,db=0"
    monkeypatch.setenv("FEAST_ONLINE_STORE", "postgres")
    assert config_name(load_settings()) == "cluster"


@pytest.mark.parametrize("name", ["ML_API_URL", "TRAINING_API_URL"])
def test_deprecated_settings_are_accepted_with_a_warning(clean_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                         name: str) -> None:
    """Read by no code: still accepted (users may set them), with a warning that names them."""
    monkeypatch.setenv(name, "http://api.example.com:3000")
    with pytest.warns(FutureWarning, match=f"{name} is deprecated and ignored"):
        settings = load_settings()
    assert settings.mode == "local"
    monkeypatch.delenv(name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_settings()  # unset: no warning
