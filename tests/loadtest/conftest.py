"""A home with a production model for the load-test scripts, and helpers to point them at it."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from aicash.settings import Settings
from tests.bentos.conftest import _prepare

SETTINGS_ENV = {name.upper() for name in Settings.model_fields}


def isolated_env(home: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in SETTINGS_ENV}
    return base | {"AICASH_HOME": str(home), "BENTOML_HOME": str(home / "bentoml"), "FEAST_USAGE": "False"}


@pytest.fixture(scope="package")
def served_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A home with candles, features and a production model (plus a 30 % canary), as the demo leaves it."""
    home = tmp_path_factory.mktemp("loadtest-home")
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(isolated_env(home))
    try:
        _prepare(home)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    yield home


def use_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in isolated_env(home).items():
        monkeypatch.setenv(name, value)


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
