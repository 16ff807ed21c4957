"""The point-in-time training join (`training_frame`, whichever join computes it), on SQLite + Parquet and on a
real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest
from sqlalchemy import Engine

from aicash.feature_tables import FeatureInputError
from aicash.indicators import INDICATOR_COLUMNS, with_indicators
from aicash.market.ingest import ingest_frame
from aicash.market.store import load_candles
from aicash.settings import Settings
from features import store
from features.training_join import JOINS, training_frame
from tests.support.features import FIRST_BARS


def _expected(engine: Engine, symbol: str, end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Indicators computed straight from the candles up to `end`: what the join must give."""
    frame = with_indicators(load_candles(engine, [symbol], "1h", end=end))
    return frame.reset_index(drop=True)


@pytest.mark.parametrize("join", JOINS)
def test_training_frame_is_point_in_time_correct(
    applied: Settings, engine: Engine, series: dict[str, pd.DataFrame], candles: dict[str, pd.DataFrame], join: str
) -> None:
    """Whichever join computes it (Feast's, merge_asof, or the one `auto` picks), no later bar reaches a row."""
    ts = candles["SYN001"]["ts"]
    stamps = [ts.iloc[10], ts.iloc[120], ts.iloc[120] + timedelta(minutes=30), ts.iloc[-1], ts.iloc[200]]
    entity_df = pd.DataFrame(
        {"symbol": ["SYN001"] * 4 + ["SYN002"], "timeframe": "1h", "event_timestamp": stamps, "label": range(5)},
        index=[50, 40, 30, 20, 10],
    )
    store.materialize(applied)
    before = training_frame(applied, entity_df, join=join)
    assert list(before.index) == [50, 40, 30, 20, 10] and list(before["label"]) == list(range(5))
    assert list(before.columns) == [*entity_df.columns, *INDICATOR_COLUMNS]
    assert before.loc[50, list(INDICATOR_COLUMNS)].isna().all()  # bar 10 is inside the warm-up: nothing to join
    for index, row in before.drop(index=50).iterrows():
        # Recomputed from the candles up to the row's time only: no later bar can have leaked in.
        truth = _expected(engine, row["symbol"], row["event_timestamp"]).iloc[-1]
        assert truth["ts"] <= row["event_timestamp"], index
        assert [row[c] for c in INDICATOR_COLUMNS] == [truth[c] for c in INDICATOR_COLUMNS], index
    assert (before.loc[30, list(INDICATOR_COLUMNS)] == before.loc[40, list(INDICATOR_COLUMNS)]).all()

    for symbol, frame in series.items():  # later candles arrive: no earlier row may change
        ingest_frame(engine, frame.iloc[FIRST_BARS:], symbol, "1h")
    store.materialize(applied)
    pd.testing.assert_frame_equal(training_frame(applied, entity_df, join=join), before)


def test_training_frame_needs_the_entity_columns(applied: Settings) -> None:
    with pytest.raises(FeatureInputError, match="lacks columns"):
        training_frame(applied, pd.DataFrame({"symbol": ["SYN001"]}))
    rows = pd.DataFrame({"symbol": ["SYN001"], "timeframe": ["1h"], "event_timestamp": [pd.NaT]})
    with pytest.raises(FeatureInputError, match="without an event_timestamp"):
        training_frame(applied, rows)
    with pytest.raises(ValueError, match="join must be one of"):
        training_frame(applied, rows, join="spark")  # type: ignore[arg-type]


def test_training_frame_of_no_rows_is_empty(applied: Settings, candles: dict[str, pd.DataFrame]) -> None:
    store.materialize(applied)
    empty = pd.DataFrame({"symbol": [], "timeframe": [], "event_timestamp": pd.to_datetime([], utc=True)})
    got = training_frame(applied, empty)
    assert got.empty and list(got.columns) == [*empty.columns, *INDICATOR_COLUMNS]
