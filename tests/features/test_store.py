"""apply and materialize (full, ranged, incremental), on SQLite + Parquet and on a real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, inspect

from aicash.db.models import Base
from aicash.feature_tables import FeatureInputError
from aicash.indicators import INDICATOR_COLUMNS, with_indicators
from aicash.market.ingest import ingest_frame
from aicash.market.store import load_candles
from aicash.model_input import MODEL_FEATURES, WINDOW_BARS
from aicash.settings import Settings
from features import online, store
from tests.support.features import FIRST_BARS


def _expected(engine: Engine, symbol: str, end: pd.Timestamp | None = None) -> pd.DataFrame:
    """Indicators computed straight from the candles up to `end`: what the store must serve."""
    frame = with_indicators(load_candles(engine, [symbol], "1h", end=end))
    return frame.reset_index(drop=True)


def _assert_online_is_latest_bar(settings: Settings, engine: Engine, symbol: str, end: pd.Timestamp | None = None):
    expected = _expected(engine, symbol, end)
    got = online.online_features(store.get_store(settings), symbol)
    assert got.event_timestamp == expected["ts"].iloc[-1]
    assert got.indicators == {c: expected[c].iloc[-1] for c in INDICATOR_COLUMNS}  # exact, not approximate
    np.testing.assert_array_equal(got.window, expected[list(MODEL_FEATURES)].to_numpy(np.float32)[-WINDOW_BARS:])
    np.testing.assert_array_equal(got.window[-1], np.float32([got.indicators[c] for c in MODEL_FEATURES]))
    return got


def test_apply_registers_the_repository_idempotently(settings: Settings, engine: Engine) -> None:
    first = store.apply(settings)
    again = store.apply(settings)
    assert first.applied == again.applied and not again.removed
    fs = store.get_store(settings)
    views = {v.name: v for v in fs.list_feature_views()}
    assert set(views) == {"technical_indicators", "indicator_window"}
    assert [f.name for f in views["technical_indicators"].features] == list(INDICATOR_COLUMNS)
    assert all(v.ttl == timedelta(days=14) for v in views.values())
    assert sorted(views["technical_indicators"].entities) == ["symbol", "timeframe"]
    service = fs.get_feature_service("signal_model_v1")
    assert {p.name: [f.name for f in p.features] for p in service.feature_view_projections} == {
        "technical_indicators": list(INDICATOR_COLUMNS),
        "indicator_window": ["window_flat"],
    }


def test_apply_removes_objects_no_longer_defined(settings: Settings, engine: Engine) -> None:
    from feast import FeatureService

    store.apply(settings)
    fs = store.get_store(settings)
    fs.apply(FeatureService(name="old_service", features=[fs.get_feature_view("technical_indicators")]))
    assert store.apply(settings).removed == ["FeatureService old_service"]
    assert [s.name for s in store.get_store(settings).list_feature_services()] == ["signal_model_v1"]


def test_materialize_serves_exactly_the_latest_bar(
    applied: Settings, engine: Engine, candles: dict[str, pd.DataFrame]
) -> None:
    steps: list[tuple[str, int, int]] = []
    result = store.materialize(applied, progress=lambda *step: steps.append(step))
    assert result.views == {"technical_indicators": 2, "indicator_window": 2}
    assert result.offline.rows == 2 * (FIRST_BARS - 49) and result.offline.windows == 2
    assert ("indicators", 2, 2) in steps and steps[-1] == ("materialize indicator_window", 2, 2)
    for symbol in candles:
        _assert_online_is_latest_bar(applied, engine, symbol)


def test_materialize_up_to_end_serves_that_bar(applied: Settings, engine: Engine, candles: dict[str, pd.DataFrame]):
    end = candles["SYN001"]["ts"].iloc[150]
    store.materialize(applied, start=candles["SYN001"]["ts"].iloc[100], end=end)
    got = _assert_online_is_latest_bar(applied, engine, "SYN001", end)
    assert got.event_timestamp == end


def test_incremental_materialization_picks_up_new_candles(
    applied: Settings, engine: Engine, series: dict[str, pd.DataFrame], candles: dict[str, pd.DataFrame]
) -> None:
    first = store.materialize(applied)
    for symbol, frame in series.items():
        ingest_frame(engine, frame.iloc[FIRST_BARS:], symbol, "1h")
    result = store.materialize(applied, incremental=True)
    assert not result.up_to_date and result.start == first.end
    assert result.views == {"technical_indicators": 2, "indicator_window": 2}
    for symbol, frame in series.items():
        got = _assert_online_is_latest_bar(applied, engine, symbol)
        assert got.event_timestamp == frame["ts"].iloc[-1]
    assert store.materialize(applied, incremental=True).up_to_date


def test_bad_ranges_and_order_are_refused(applied: Settings, candles: dict[str, pd.DataFrame]) -> None:
    ts = candles["SYN001"]["ts"]
    with pytest.raises(FeatureInputError, match="is after --end"):
        store.materialize(applied, start=ts.iloc[10], end=ts.iloc[5])
    with pytest.raises(FeatureInputError, match="no candles between"):
        store.materialize(applied, start=ts.iloc[-1] + timedelta(days=30))
    with pytest.raises(FeatureInputError, match="give no --start/--end"):
        store.materialize(applied, start=ts.iloc[0], incremental=True)


def test_materialize_before_apply_says_so(settings: Settings, engine: Engine, candles: dict[str, pd.DataFrame]):
    with pytest.raises(store.NotAppliedError, match="aicash features apply"):
        store.materialize(settings)


def test_cluster_mode_keeps_feast_out_of_the_public_schema(
    applied: Settings, engine: Engine, candles: dict[str, pd.DataFrame]
) -> None:
    if engine.dialect.name != "postgresql":
        assert (applied.aicash_home / "features" / "registry.db").is_file()
        assert (applied.aicash_home / "features" / "online.db").is_file()
        return
    store.materialize(applied)
    inspector = inspect(engine)
    assert set(inspector.get_table_names()) == {*Base.metadata.tables, "alembic_version"}
    feast_tables = set(inspector.get_table_names(schema="feast"))
    assert {"candle_indicators", "indicator_windows", "feature_views", "aicash_technical_indicators"} <= feast_tables
