"""Offline tables: bulk reads equal the candle store's, and what is written reads back exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine

from aicash.feature_tables import (
    INDICATORS_TABLE,
    PG_SCHEMA,
    WINDOW_FIELD,
    WINDOWS_TABLE,
    FeatureInputError,
    candle_span,
    check_range,
    offline_paths,
    read_series,
    series_features,
    write_offline_tables,
)
from aicash.indicators import INDICATOR_COLUMNS, with_indicators
from aicash.market.store import load_candles
from aicash.model_input import MODEL_FEATURES, WINDOW_BARS
from aicash.settings import Settings


def _offline_frames(engine: Engine, settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame]:
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            indicators = pd.read_sql(f"SELECT * FROM {PG_SCHEMA}.{INDICATORS_TABLE}", conn)
            windows = pd.read_sql(f"SELECT * FROM {PG_SCHEMA}.{WINDOWS_TABLE}", conn)
        return indicators, windows
    indicators_path, windows_path = offline_paths(settings.aicash_home)
    return pq.read_table(indicators_path).to_pandas(), pq.read_table(windows_path).to_pandas()


def test_bulk_read_equals_the_candle_store(engine: Engine, candles: dict[str, pd.DataFrame]) -> None:
    with engine.connect() as conn:
        fast = read_series(conn, "SYN001", "1h")
    slow = load_candles(engine, ["SYN001"], "1h")
    pd.testing.assert_frame_equal(fast, slow[list(fast.columns)], check_dtype=False)
    assert str(fast["ts"].dt.tz) == "UTC"


def test_offline_tables_hold_every_bar_exactly_and_the_window_as_of_end(
    engine: Engine, settings: Settings, candles: dict[str, pd.DataFrame]
) -> None:
    end = candles["SYN002"]["ts"].iloc[200]
    written = write_offline_tables(engine, settings.aicash_home, series_features(engine, end))
    indicators, windows = _offline_frames(engine, settings)
    expected = with_indicators(load_candles(engine, ["SYN002"], "1h"))
    got = indicators[indicators["symbol"] == "SYN002"].sort_values("event_timestamp")
    assert written.series == 2 and written.rows == len(indicators) and written.windows == 2
    assert list(pd.to_datetime(got["event_timestamp"], utc=True)) == list(expected["ts"])
    np.testing.assert_array_equal(got[list(INDICATOR_COLUMNS)].to_numpy(), expected[list(INDICATOR_COLUMNS)].to_numpy())

    window = windows[windows["symbol"] == "SYN002"].iloc[0]
    assert pd.Timestamp(window["event_timestamp"]) == end
    upto = expected[expected["ts"] <= end][list(MODEL_FEATURES)].to_numpy(np.float32)[-WINDOW_BARS:]
    np.testing.assert_array_equal(np.asarray(window[WINDOW_FIELD], dtype=np.float32), upto.reshape(-1))


def test_empty_and_inverted_ranges_are_refused(engine: Engine, candles: dict[str, pd.DataFrame]) -> None:
    with pytest.raises(FeatureInputError, match="is after --end"):
        check_range(pd.Timestamp("2021-01-02", tz="UTC"), pd.Timestamp("2021-01-01", tz="UTC"))
    with pytest.raises(FeatureInputError, match="no candles between"):
        candle_span(engine, pd.Timestamp("2030-01-01", tz="UTC"), None)
    count, last = candle_span(engine)
    assert count == 600 and last == candles["SYN001"]["ts"].iloc[-1]


def test_no_candles_at_all_is_a_clear_error(engine: Engine) -> None:
    with pytest.raises(FeatureInputError, match="no candles yet"):
        candle_span(engine)


def _oids(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return tuple(conn.exec_driver_sql(  # type: ignore[return-value]
            f"SELECT '{PG_SCHEMA}.{INDICATORS_TABLE}'::regclass::oid, '{PG_SCHEMA}.{WINDOWS_TABLE}'::regclass::oid"
        ).one())


# PostgreSQL only: SQLite's offline tables are Parquet files, replaced whole.
@pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_a_rewrite_keeps_the_tables_and_another_shape_recreates_them(
    engine: Engine, settings: Settings, candles: dict[str, pd.DataFrame]
) -> None:
    """PostgreSQL: rows are replaced in the same tables (TRUNCATE + COPY: DML a non-owner may do), the key kept; a
    table whose columns changed is dropped and created again (the owner's job)."""
    series = series_features(engine)
    first = write_offline_tables(engine, settings.aicash_home, series)
    before = _oids(engine)
    again = write_offline_tables(engine, settings.aicash_home, series)
    assert _oids(engine) == before and again == first
    indicators, _ = _offline_frames(engine, settings)
    assert len(indicators) == first.rows  # replaced, not appended
    with engine.begin() as conn:
        conn.exec_driver_sql(f"ALTER TABLE {PG_SCHEMA}.{WINDOWS_TABLE} DROP COLUMN {WINDOW_FIELD}")
    write_offline_tables(engine, settings.aicash_home, series)
    assert _oids(engine)[1] != before[1]
    _, windows = _offline_frames(engine, settings)
    assert WINDOW_FIELD in windows.columns and len(windows) == first.windows
    with engine.connect() as conn:
        keys = conn.exec_driver_sql(f"SELECT count(*) FROM pg_constraint WHERE contype = 'p' AND conrelid IN "
                                    f"('{PG_SCHEMA}.{INDICATORS_TABLE}'::regclass, "
                                    f"'{PG_SCHEMA}.{WINDOWS_TABLE}'::regclass)").scalar()
    assert keys == 2
