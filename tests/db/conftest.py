"""Fixtures of the database tests: `copy`, a copy of the session's PostgreSQL served home (cluster mode), for the
tests that run workloads under their own logins."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aicash.db.engine import dispose_engines
from tests.support.service import Template
from tests.support.templates import copy_template, drop_copy


@pytest.fixture
def copy(pg_template: Template, tmp_path: Path) -> Iterator[Template]:
    copied = copy_template(pg_template, tmp_path / "home")
    try:
        yield copied
    finally:
        dispose_engines()
        drop_copy(copied)
