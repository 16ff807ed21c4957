"""The guide's targets as settings: TRAINING_TIMEOUT_SECONDS (< 2 hours), MIN_LIVE_WIN_RATE (> 55 %) and
MIN_LIVE_CONFIDENCE (> 70 %): their defaults, the environment, and refused values naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from aicash.settings import SettingsError, load_settings


def test_defaults_are_the_guide_targets(clean_env: Path) -> None:
    s = load_settings()
    assert (s.training_timeout_seconds, s.min_live_win_rate, s.min_live_confidence) == (7200, 0.55, 0.70)


def test_read_from_the_environment(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINING_TIMEOUT_SECONDS", "1800")
    monkeypatch.setenv("MIN_LIVE_WIN_RATE", "0.6")
    monkeypatch.setenv("MIN_LIVE_CONFIDENCE", "0.5")
    s = load_settings()
    assert (s.training_timeout_seconds, s.min_live_win_rate, s.min_live_confidence) == (1800, 0.6, 0.5)
    assert s.masked()["TRAINING_TIMEOUT_SECONDS"] == "1800"  # `aicash config show` lists them


@pytest.mark.parametrize(("name", "value"), [("TRAINING_TIMEOUT_SECONDS", "0"), ("TRAINING_TIMEOUT_SECONDS", "2h"),
                                             ("MIN_LIVE_WIN_RATE", "1.5"), ("MIN_LIVE_CONFIDENCE", "-0.1")])
def test_invalid_value_names_the_variable(clean_env: Path, monkeypatch: pytest.MonkeyPatch, name: str,
                                          value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings()
