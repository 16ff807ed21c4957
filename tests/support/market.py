"""Market-data look-ups shared by the ingestion tests."""

from __future__ import annotations

import pandas as pd

from aicash.db.engine import make_engine
from aicash.market.store import load_candles


def stored(env: dict[str, str]) -> pd.DataFrame:
    """Every candle in the database of a command environment (`DATABASE_URL`)."""
    engine = make_engine(env["DATABASE_URL"])
    try:
        return load_candles(engine)
    finally:
        engine.dispose()
