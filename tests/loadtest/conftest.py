"""A home with a production model for the load-test scripts (helpers to point them at it: tests/support/service.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.service import environment, home_env, prepare_service_home


@pytest.fixture(scope="package")
def served_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A home with candles, features and a production model (plus a 30 % canary), as the demo leaves it."""
    home = tmp_path_factory.mktemp("loadtest-home")
    with environment(home_env(home)):
        prepare_service_home(home)
    yield home
