"""Training sets: entity rows joined point in time with the indicators, by Feast or by merge_asof, whichever is
cheaper for the rows at hand."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from aicash.db.engine import engine_for
from aicash.feature_tables import FeatureInputError
from aicash.indicators import INDICATOR_COLUMNS
from aicash.settings import Settings
from features.config import FEATURES_DIR
from features.store import get_store, quiet, registered_views

if TYPE_CHECKING:
    from feast import FeatureStore

INDICATORS_VIEW = "technical_indicators"  # the view training sets join point in time
# `training_frame(join="auto")` leaves the join to Feast up to this many (entity row, feature row) pairs summed over
# series; Feast's file store builds all of them (about 2.5 us each here, plus ~2 s of its own set-up).
FEAST_JOIN_MAX_PAIRS = 1_000_000
Join = Literal["auto", "feast", "asof"]
JOINS: tuple[Join, ...] = ("auto", "feast", "asof")
ENTITY_DF_COLUMNS = ("symbol", "timeframe", "event_timestamp")
log = logging.getLogger(__name__)


def training_frame(settings: Settings, entity_df: pd.DataFrame, join: Join = "auto") -> pd.DataFrame:
    """`entity_df` (symbol, timeframe, event_timestamp in UTC) with `INDICATOR_COLUMNS` joined point-in-time:
    each row gets the indicators of its series' last bar at or before its timestamp and within the view's TTL,
    else NaN; never a later bar. Rows keep `entity_df`'s order and index. Reads the offline tables as of the last
    `materialize` / `refresh_offline_tables`.

    `join` picks who computes it: "feast" is Feast's `get_historical_features`, the reference semantics; "asof"
    is `features.point_in_time` (merge_asof on the same offline rows), the same answer in O(n log n); "auto" uses
    Feast while entity rows x feature rows per series stay within `FEAST_JOIN_MAX_PAIRS` (a few seconds of Feast's
    work), merge_asof beyond. Feast's file store materialises every such pair (EURUSD's 5,000 bars: 25M pairs,
    about a minute; 1M bars: 745 GiB), so whole-history training sets need merge_asof. Feast stays the path where
    it is cheap (ad-hoc and small sets), so both paths keep running in production and in the tests, and
    tests/features/test_point_in_time.py checks that they give the same frame on both offline stores.
    The path taken is logged (logger `features.training_join`, INFO). Each distinct (symbol, timeframe, timestamp)
    is joined once and copied to its rows: Feast's file store would keep only one of duplicate entity rows.
    """
    from features.point_in_time import ViewSpec, asof_join, join_pairs, read_feature_rows

    if join not in JOINS:
        raise ValueError(f"join must be one of {JOINS}, not {join!r}")
    frame = _entity_rows(entity_df)
    columns = list(ENTITY_DF_COLUMNS)
    of_row = frame.groupby(columns, sort=False, dropna=False, observed=True).ngroup().to_numpy()  # by 1st appearance
    keys = frame[columns].iloc[np.unique(of_row, return_index=True)[1]].reset_index(drop=True)
    store = get_store(settings)
    spec = ViewSpec.of(registered_views(store)[INDICATORS_VIEW], INDICATOR_COLUMNS)
    values, path, pairs = np.empty((0, len(INDICATOR_COLUMNS))), "none (no entity rows)", "0"
    if len(keys) and join == "feast":
        values, path, pairs = _feast_join(store, keys), "feast", "?"
    elif len(keys):
        engine = engine_for(settings) if settings.mode == "cluster" else None
        rows = read_feature_rows(spec, keys, str(FEATURES_DIR), engine)
        count = join_pairs(keys, rows, spec.join_keys)
        pairs = f"{count:,}"
        if join == "auto" and count <= FEAST_JOIN_MAX_PAIRS:
            values, path = _feast_join(store, keys), "feast"
        else:
            values, path = asof_join(keys, rows, spec).to_numpy(), "merge_asof"
    log.info(
        "point-in-time join of %d entity rows (%d distinct) by %s (join=%s, %s row pairs)",
        len(frame),
        len(keys),
        path,
        join,
        pairs,
    )
    frame[list(INDICATOR_COLUMNS)] = values[of_row]
    frame.index = entity_df.index
    return frame


def _entity_rows(entity_df: pd.DataFrame) -> pd.DataFrame:
    """A copy of `entity_df` with `event_timestamp` in UTC; raises `FeatureInputError` for missing columns or
    times."""
    missing = [c for c in ENTITY_DF_COLUMNS if c not in entity_df.columns]
    if missing:
        raise FeatureInputError(f"entity_df lacks columns {missing}: it needs {list(ENTITY_DF_COLUMNS)}")
    frame = entity_df.copy()
    stamps = pd.to_datetime(frame["event_timestamp"])
    frame["event_timestamp"] = stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
    if frame["event_timestamp"].isna().any():
        raise FeatureInputError("entity_df has rows without an event_timestamp")
    return frame


def _feast_join(store: FeatureStore, keys: pd.DataFrame) -> np.ndarray:
    """The indicators of each row of `keys` (distinct symbol, timeframe, event_timestamp) by Feast's
    `get_historical_features`, as float64 in `keys`' order."""
    features = [f"{INDICATORS_VIEW}:{c}" for c in INDICATOR_COLUMNS]
    with quiet():
        joined = store.get_historical_features(
            entity_df=keys.assign(_aicash_key=range(len(keys))), features=features
        ).to_df()
    # Joined back by key: the file (dask) offline store drops rows with no feature value in reach (before a
    # series' first bar, or beyond the TTL) where PostgreSQL keeps them with NULLs; here both give NaN.
    values = joined[["_aicash_key", *INDICATOR_COLUMNS]].set_index("_aicash_key").reindex(range(len(keys)))
    return values.to_numpy(dtype="float64")
