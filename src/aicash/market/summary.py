"""What the candle store holds, per series: cheap to import (no pandas), for `aicash data list`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, func, select

from aicash.db.models import MarketCandle


@dataclass(frozen=True)
class SeriesSummary:
    """What the store holds for one (symbol, timeframe)."""

    symbol: str
    timeframe: str
    bars: int
    first: datetime
    last: datetime


def summarize(engine: Engine) -> list[SeriesSummary]:
    """Bar counts and date ranges per (symbol, timeframe)."""
    t = MarketCandle.__table__
    query = (
        select(t.c.symbol, t.c.timeframe, func.count(), func.min(t.c.ts), func.max(t.c.ts))
        .group_by(t.c.symbol, t.c.timeframe)
        .order_by(t.c.symbol, t.c.timeframe)
    )
    with engine.connect() as conn:
        return [SeriesSummary(*row) for row in conn.execute(query)]
