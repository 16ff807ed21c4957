"""Feature-store fixtures: a few hundred synthetic bars per symbol in the test's database (SQLite and PostgreSQL)."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import Engine

from aicash.market.ingest import ingest_frame
from aicash.market.synth import synth_universe
from aicash.settings import Settings
from features import store
from tests.support.features import BARS, FIRST_BARS


@pytest.fixture
def series() -> dict[str, pd.DataFrame]:
    """Two symbols' candles, BARS hourly bars each (deterministic)."""
    return dict(synth_universe(2, BARS, seed=7, timeframe_step=pd.Timedelta("1h")))


@pytest.fixture
def candles(engine: Engine, series: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The first FIRST_BARS bars of each symbol, ingested; returns what was ingested."""
    for symbol, frame in series.items():
        ingest_frame(engine, frame.iloc[:FIRST_BARS], symbol, "1h")
    return {symbol: frame.iloc[:FIRST_BARS] for symbol, frame in series.items()}


@pytest.fixture
def applied(settings: Settings, engine: Engine) -> Settings:
    """Settings of a database whose feature repository is applied."""
    store.apply(settings)
    return settings
