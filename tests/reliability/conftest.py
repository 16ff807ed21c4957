"""Fixtures of the reliability tests: services on copies of the session's prepared homes (tests/conftest.py).

`admin_service` is changed by the admin tests (promotions, rollbacks, training runs); `fuzz_service` is
fuzzed with an admin key, on SQLite and on PostgreSQL, and its candles are deleted so that any training run the
fuzzer starts fails in its first steps instead of training for minutes.
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
    start_service,
    stop_service,
)
from tests.support.templates import DATABASES, copy_template, drop_copy, served_env, template_of


@pytest.fixture(scope="package")
def admin_service(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    home = copy_home(template, tmp_path_factory.mktemp("admin") / "home")
    keys = create_keys(home, {"frontend": False, "ops": True, "gone": False}, revoke=("gone",))
    running = start_service(home, {"SMTP_PASSWORD": SMTP_PASSWORD, "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
                                   "AWS_ACCESS_KEY_ID": "AKIATESTNEVERLOGGED1"})
    running.keys = keys
    yield running
    stop_service(running)


@pytest.fixture(scope="package", params=DATABASES)
def fuzz_service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    copy = copy_template(template_of(request), tmp_path_factory.mktemp(f"fuzz-{request.param}") / "home")
    engine = make_engine(copy.database_url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM market_candles"))
    engine.dispose()
    keys = create_keys(copy.home, {"frontend": False, "ops": True}, database_url=copy.database_url)
    running = start_service(copy.home, {"RATE_LIMIT_PER_MINUTE": "1000000", **served_env(copy),
                                        "CORS_ALLOW_ORIGINS": "https://app.aicash.example"})
    running.keys = keys
    try:
        yield running
    finally:
        stop_service(running)
        drop_copy(copy)
