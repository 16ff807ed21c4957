"""The repository as Feast sees it: both feature_store YAML files load through Feast's own loader, and Feast's
own CLI applies and materializes the repository unchanged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from feast.repo_config import load_repo_config

from aicash.settings import Settings, load_settings
from features import online, repo, store


def _feast_config(monkeypatch: pytest.MonkeyPatch, settings: Settings):  # type: ignore[no-untyped-def]
    """Feast's own loader (os.path.expandvars + RepoConfig) with the variables `aicash features env` exports."""
    for name, value in store.cli_env(settings).items():
        monkeypatch.setenv(name, value)
    return load_repo_config(store.FEATURES_DIR, store.config_file(settings))


def test_local_yaml_is_valid_for_feast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = load_settings(aicash_home=tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'a.db'}")
    config = _feast_config(monkeypatch, settings)
    assert config.project == repo.PROJECT
    assert config.online_store.type == "sqlite" and config.offline_store.type == "file"
    assert config.online_store.path == str(tmp_path / "home" / "features" / "online.db")  # absolute, under home
    assert config.registry.path == str(tmp_path / "home" / "features" / "registry.db")
    assert config.materialization_config.pull_latest_features
    assert store.repo_config(settings).model_dump() == config.model_dump()  # aicash fills the file the same way


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
    assert store.repo_config(settings).model_dump() == config.model_dump()

    plain = load_settings(aicash_home=tmp_path, database_url="postgresql://u@localhost/db")
    assert store.repo_config(plain).online_store.sslmode == "prefer"  # never Feast's default "require"


def test_definitions_build_lazily_for_feasts_scan(settings: Settings) -> None:
    built = repo.build(settings)
    assert [o.name for o in built.objects()] == [
        "symbol", "timeframe", "candle_indicators_source", "indicator_windows_source",
        "technical_indicators", "indicator_window", "signal_model_v1",
    ]
    expected_source = "PostgreSQLSource" if settings.mode == "cluster" else "FileSource"
    assert type(built.candle_indicators_source).__name__ == expected_source
    assert "technical_indicators" in dir(repo)  # what Feast's parse_repo iterates over
    with pytest.raises(AttributeError):
        _ = repo.not_a_definition


@pytest.mark.slow
def test_feasts_own_cli_applies_and_materializes(
    settings: Settings, engine, candles: dict[str, pd.DataFrame], tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    store.refresh_offline_tables(settings)  # aicash writes the offline data; Feast does the rest
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), **store.cli_env(settings)}
    feast = str(Path(sys.executable).parent / "feast")
    last = candles["SYN001"]["ts"].iloc[-1].strftime("%Y-%m-%dT%H:%M:%S")
    for args in (["apply"], ["materialize", "2019-01-01T00:00:00", last]):
        run = subprocess.run([feast, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
    got = online.online_features(store.get_store(settings), "SYN001")
    assert got.event_timestamp == candles["SYN001"]["ts"].iloc[-1]
    assert got.window.shape == (64, 16) and np.isfinite(got.window).all()
