"""Whether a training run has anything new to learn from: `POST /train` without `force_retrain` skips a run when
no bar of the requested series has arrived since the production model's training data ended.

The run starts whenever that cannot be shown: no production version, a version registered without its training
data's range, a series it was not trained on, or a bar in the candle store newer than the latest bar it used.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from aicash.db.models import MarketCandle
from aicash.model_input import MODEL_NAME
from aicash.registry.lifecycle import current_production
from aicash.registry.summary import training_data


@dataclass(frozen=True)
class NothingNew:
    """Why a run is skipped: the production version, where its training data ended, the latest stored bar."""

    version: str
    series: list[str]
    data_end: datetime
    latest_bar: datetime | None

    @property
    def reason(self) -> str:
        latest = "no bar is stored" if self.latest_bar is None else f"the latest is {self.latest_bar.isoformat()}"
        return (f"no new bar since the production model {self.version}'s training data ended "
                f"({self.data_end.isoformat()}) for {', '.join(self.series)}: {latest}; nothing new to train on "
                '(send {"force_retrain": true} to train anyway)')


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def latest_bar(engine: Engine, symbols: Sequence[str], timeframe: str) -> datetime | None:
    """The time of the newest stored bar of any of the series, in UTC; None when none is stored."""
    query = select(func.max(MarketCandle.ts)).where(MarketCandle.symbol.in_(list(symbols)),
                                                     MarketCandle.timeframe == timeframe)
    with engine.connect() as conn:
        value = conn.execute(query).scalar()
    return None if value is None else _utc(value)


def nothing_new(engine: Engine, symbols: Sequence[str], timeframe: str, name: str = MODEL_NAME) -> NothingNew | None:
    """Why a run on `symbols`/`timeframe` would learn nothing new (see the module), or None: start it."""
    production = current_production(engine, name)
    if production is None:
        return None
    data = training_data(production.metrics)
    series = [f"{symbol}/{timeframe}" for symbol in symbols]
    if data is None or data.last is None or not set(series) <= set(data.series):
        return None
    end = _utc(data.last)
    latest = latest_bar(engine, symbols, timeframe)
    if latest is not None and latest > end:
        return None
    return NothingNew(production.version, series, end, latest)
