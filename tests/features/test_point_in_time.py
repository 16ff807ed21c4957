"""The merge_asof point-in-time join (features.point_in_time) against Feast's own `get_historical_features`, on the
local configuration (Parquet, Feast's file store) and on PostgreSQL, and the choice between them."""

from __future__ import annotations

import logging
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from aicash.indicators import INDICATOR_COLUMNS, with_indicators
from aicash.market.ingest import ingest_frame
from aicash.market.store import load_candles
from aicash.market.synth import synth_universe
from aicash.settings import Settings
from features import point_in_time, store
from features.config import FEATURES_DIR
from features.repo import FEATURE_TTL
from features.training_join import training_frame

HOUR, FOUR_HOURS = pd.Timedelta("1h"), pd.Timedelta("4h")
JOIN_LOG = "features.training_join"  # the logger of the join each training_frame call took


def _paths(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The join each `training_frame` call logged it took."""
    return [r.getMessage().split(" by ")[1].split(" (")[0] for r in caplog.records if r.name == JOIN_LOG]


def _with_gaps(candles: pd.DataFrame, rng: np.random.Generator, gap_after: int, gap: pd.Timedelta) -> pd.DataFrame:
    """Candles with a tenth of the bars missing at random and every bar from `gap_after` on shifted by `gap`."""
    kept = candles[rng.random(len(candles)) > 0.1].reset_index(drop=True)
    kept.loc[gap_after:, "ts"] = kept.loc[gap_after:, "ts"] + gap
    return kept


@pytest.fixture
def gappy(applied: Settings, engine: Engine) -> dict[tuple[str, str], pd.Timestamp]:
    """Three series (SYN001 1h and 4h, SYN002 1h) with random holes and one gap longer than the TTL each, ingested
    and materialized; returns each series' bar times."""
    rng = np.random.default_rng(11)
    hourly = dict(synth_universe(2, 700, seed=3, timeframe_step=HOUR))
    four_hourly = dict(synth_universe(1, 300, seed=4, timeframe_step=FOUR_HOURS))
    frames = {
        ("SYN001", "1h"): _with_gaps(hourly["SYN001"], rng, 400, FEATURE_TTL + pd.Timedelta("3D")),
        ("SYN002", "1h"): _with_gaps(hourly["SYN002"], rng, 250, FEATURE_TTL * 2),
        ("SYN001", "4h"): _with_gaps(four_hourly["SYN001"], rng, 200, FEATURE_TTL + FOUR_HOURS),
    }
    for (symbol, timeframe), frame in frames.items():
        ingest_frame(engine, frame, symbol, timeframe)
    store.materialize(applied)
    return {key: frame["ts"] for key, frame in frames.items()}


def _entity_df(bars: dict[tuple[str, str], pd.Series], rng: np.random.Generator) -> pd.DataFrame:
    """Entity rows meant to hit every case: random times (whole seconds) from before each series' first bar to
    beyond the TTL after its last, times exactly on bars, exactly TTL after a bar and one second more (inside the
    long gaps, where that bar is the latest), an unknown symbol, duplicates; shuffled, with an index of its own."""
    parts = []
    for (symbol, timeframe), ts in bars.items():
        first, last = ts.iloc[0], ts.iloc[-1]
        span = int((last - first).total_seconds()) + 2 * int(FEATURE_TTL.total_seconds())
        random = first - pd.Timedelta("3D") + pd.to_timedelta(rng.integers(0, span, 150), unit="s")
        on_bars = ts.sample(20, random_state=1).to_numpy()
        before_gap = ts[ts.diff().shift(-1) > FEATURE_TTL]  # the last bar before a gap longer than the TTL
        edges = pd.concat([before_gap + FEATURE_TTL, before_gap + FEATURE_TTL + pd.Timedelta("1s"), ts.iloc[-1:]])
        stamps = pd.DatetimeIndex(np.concatenate([random.to_numpy(), on_bars, edges.to_numpy()]), tz="UTC")
        parts.append(pd.DataFrame({"symbol": symbol, "timeframe": timeframe, "event_timestamp": stamps}))
    known = pd.concat(parts, ignore_index=True)
    unknown = known.sample(5, random_state=2).assign(symbol="SYN999")
    frame = pd.concat([known, known.sample(40, random_state=3), unknown], ignore_index=True)
    frame = frame.sample(frac=1, random_state=4)
    frame.index = pd.Index([f"row{i}" for i in rng.permutation(len(frame))])
    return frame.assign(label=np.arange(len(frame)))


def test_merge_asof_join_equals_feasts_get_historical_features(
    applied: Settings, engine: Engine, gappy: dict[tuple[str, str], pd.Series], caplog: pytest.LogCaptureFixture
) -> None:
    entity_df = _entity_df(gappy, np.random.default_rng(5))
    assert entity_df.duplicated(["symbol", "timeframe", "event_timestamp"]).sum() >= 40
    with caplog.at_level(logging.INFO, logger=JOIN_LOG):
        feast = training_frame(applied, entity_df, join="feast")
        asof = training_frame(applied, entity_df, join="asof")
    assert _paths(caplog) == ["feast", "merge_asof"]

    pd.testing.assert_frame_equal(asof, feast, check_exact=True)  # values, NaNs, order, index, dtypes
    assert list(asof.index) == list(entity_df.index) and list(asof["label"]) == list(entity_df["label"])

    # The cases the data was built for all occur, and get what the rule says.
    values = asof[list(INDICATOR_COLUMNS)]
    for symbol, timeframe in gappy:
        indicators = with_indicators(load_candles(engine, [symbol], timeframe)).set_index("ts")
        rows = asof[(asof["symbol"] == symbol) & (asof["timeframe"] == timeframe)]
        for index, row in rows.iterrows():
            earlier = indicators.index[indicators.index <= row["event_timestamp"]]
            in_reach = len(earlier) and earlier[-1] >= row["event_timestamp"] - FEATURE_TTL
            expected = indicators.loc[earlier[-1], list(INDICATOR_COLUMNS)] if in_reach else None
            got = values.loc[index]
            assert got.isna().all() if expected is None else (got == expected).all(), (symbol, timeframe, index)
    nan_rows = values.isna().all(axis=1)
    assert nan_rows[asof["symbol"] == "SYN999"].all()
    assert 0 < nan_rows.sum() < len(asof) and not values[~nan_rows].isna().any().any()


def test_auto_join_stays_with_feast_for_small_sets(
    applied: Settings, engine: Engine, gappy: dict[tuple[str, str], pd.Series], caplog: pytest.LogCaptureFixture
) -> None:
    entity_df = _entity_df(gappy, np.random.default_rng(6))
    with caplog.at_level(logging.INFO, logger=JOIN_LOG):
        auto = training_frame(applied, entity_df)
    assert _paths(caplog) == ["feast"]
    pd.testing.assert_frame_equal(auto, training_frame(applied, entity_df, join="asof"), check_exact=True)


@pytest.mark.slow
def test_large_entity_df_takes_the_merge_asof_path(
    applied: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """200,000 bars (2 series of 100,000) as entity rows, every bar: Feast's file store would build 10^10 row
    pairs. Feast's join is made to fail, so the test passes only if it is not taken."""
    from feast import FeatureStore

    candles = dict(synth_universe(2, 100_000, seed=9, timeframe_step=HOUR))
    for symbol, frame in candles.items():
        ingest_frame(engine, frame, symbol, "1h")
    store.materialize(applied)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("Feast's get_historical_features called for 200,000 entity rows")

    monkeypatch.setattr(FeatureStore, "get_historical_features", refuse)
    entity_df = pd.concat(
        [frame[["ts"]].assign(symbol=symbol, timeframe="1h") for symbol, frame in candles.items()], ignore_index=True
    ).rename(columns={"ts": "event_timestamp"})
    with caplog.at_level(logging.INFO, logger=JOIN_LOG):
        got = training_frame(applied, entity_df)
    assert _paths(caplog) == ["merge_asof"]
    assert f"{2 * 100_000 * (100_000 - 49):,} row pairs" in caplog.records[-1].message  # bars x bars after warm-up
    assert len(got) == 200_000 and list(got.index) == list(entity_df.index)
    for symbol, frame in candles.items():
        expected = with_indicators(frame).set_index("ts")[list(INDICATOR_COLUMNS)]  # every bar after the warm-up
        rows = got[got["symbol"] == symbol].set_index("event_timestamp")[list(INDICATOR_COLUMNS)]
        assert rows.iloc[: len(frame) - len(expected)].isna().all().all()
        np.testing.assert_array_equal(rows.loc[expected.index].to_numpy(), expected.to_numpy())


def test_reach_bounds_the_rows_read(applied: Settings, engine: Engine, gappy: dict[tuple[str, str], pd.Series]):
    fs = store.get_store(applied)
    spec = point_in_time.ViewSpec.of(fs.get_feature_view("technical_indicators"), INDICATOR_COLUMNS)
    assert spec.join_keys == ("symbol", "timeframe") and spec.ttl == timedelta(days=14)
    at = gappy[("SYN002", "1h")].iloc[300]
    keys = pd.DataFrame({"symbol": ["SYN002"], "timeframe": ["1h"], "event_timestamp": [at]})
    db = engine if applied.mode == "cluster" else None
    rows = point_in_time.read_feature_rows(spec, keys, str(FEATURES_DIR), db)
    assert set(rows["symbol"]) == {"SYN002"} and set(rows["timeframe"]) == {"1h"}
    assert rows["__aicash_ts"].max() == at and rows["__aicash_ts"].min() >= at - FEATURE_TTL
    assert point_in_time.join_pairs(keys, rows, spec.join_keys) == len(rows)
    none = point_in_time.read_feature_rows(spec, keys.assign(symbol="SYN999"), str(FEATURES_DIR), db)
    assert none.empty and list(none.columns) == list(rows.columns)
