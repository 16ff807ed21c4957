"""Fixtures of the market-data source tests: a second PostgreSQL database that plays the trading application's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import create_database, drop_database


@pytest.fixture
def trading_db(postgres_url: str) -> Iterator[str]:
    """A new, empty database of its own on the PostgreSQL server (never the one `db_url` gives the test)."""
    url = create_database(postgres_url, prefix="trading")
    try:
        yield url
    finally:
        drop_database(url)
