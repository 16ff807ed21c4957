"""Fixtures of the reliability tests: a prepared home (once per session) and services on copies of it.

`admin_service` is changed by the admin tests (promotions, rollbacks, training runs); `fuzz_service` is
fuzzed with an admin key, and its candles are deleted so that any training run the fuzzer starts fails in its
first steps instead of training for minutes.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text

from aicash.db.engine import make_engine
from tests.support.service import (
    AWS_SECRET,
    SMTP_PASSWORD,
    Running,
    Template,
    copy_home,
    create_keys,
    home_database_url,
    prepare_template,
    start_service,
    stop_service,
)


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    return prepare_template(tmp_path_factory.mktemp("reliability-template") / "home")


@pytest.fixture(scope="package")
def admin_service(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    home = copy_home(template, tmp_path_factory.mktemp("admin") / "home")
    keys = create_keys(home, {"frontend": False, "ops": True, "gone": False}, revoke=("gone",))
    running = start_service(home, {"SMTP_PASSWORD": SMTP_PASSWORD, "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
                                   "AWS_ACCESS_KEY_ID": "AKIATESTNEVERLOGGED1"})
    running.keys = keys
    yield running
    stop_service(running)


@pytest.fixture(scope="package")
def fuzz_service(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    home = copy_home(template, tmp_path_factory.mktemp("fuzz") / "home")
    engine = make_engine(home_database_url(home))
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM market_candles"))
    engine.dispose()
    keys = create_keys(home, {"frontend": False, "ops": True})
    running = start_service(home, {"RATE_LIMIT_PER_MINUTE": "1000000"})
    running.keys = keys
    yield running
    stop_service(running)
