"""The repository as Feast sees it: the definitions build lazily for Feast's scan, and Feast's own CLI applies and
materializes the repository unchanged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from aicash.settings import Settings
from features import config, online, repo, store


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
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), **config.cli_env(settings)}
    feast = str(Path(sys.executable).parent / "feast")
    last = candles["SYN001"]["ts"].iloc[-1].strftime("%Y-%m-%dT%H:%M:%S")
    for args in (["apply"], ["materialize", "2019-01-01T00:00:00", last]):
        run = subprocess.run([feast, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stdout + run.stderr
    got = online.online_features(store.get_store(settings), "SYN001")
    assert got.event_timestamp == candles["SYN001"]["ts"].iloc[-1]
    assert got.window.shape == (64, 16) and np.isfinite(got.window).all()
