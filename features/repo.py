"""Feast definitions of the aicash feature repository: what is served to the signal model, from where, how fresh.

`build(settings)` makes the objects; they depend on the settings in one way only: where the offline data lives
(Parquet files under AICASH_HOME in local mode, tables in PostgreSQL schema `feast` in cluster mode). Feast's own
CLI (`feast -f features/feature_store.local.yaml apply`) scans this module's names: those are built on first
access from the environment's settings (PEP 562 `__getattr__`), so importing the module reads nothing.

Every feature row is stamped with its bar's own timestamp (`market_candles.ts`): the indicators of a bar are
known once that bar is in the candle store, and a point-in-time join at time t sees bars up to t only.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.data_format import ParquetFormat
from feast.data_source import DataSource
from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
from feast.types import Array, Float32, Float64

from aicash.feature_tables import (
    INDICATORS_TABLE,
    PG_SCHEMA,
    TIMESTAMP_FIELD,
    WINDOW_FIELD,
    WINDOWS_TABLE,
    offline_paths,
)
from aicash.indicators import INDICATOR_COLUMNS, INDICATOR_DESCRIPTIONS
from aicash.model_input import MODEL_FEATURES, MODEL_NAME, WINDOW_BARS
from aicash.settings import Settings, load_settings

PROJECT = "aicash"  # the `project:` of both feature_store.*.yaml files
# Longer than the longest bar (1w) plus a market closure: an older value is stale, not "the latest".
FEATURE_TTL = timedelta(days=14)
TAGS = {"team": "ml-platform", "owner": "aicash"}


@dataclass(frozen=True)
class FeatureRepo:
    """The repository's Feast objects, by role."""

    symbol: Entity
    timeframe: Entity
    candle_indicators_source: DataSource
    indicator_windows_source: DataSource
    technical_indicators: FeatureView
    indicator_window: FeatureView
    signal_model_v1: FeatureService

    def objects(self) -> list[Any]:
        """Every object, in the order `FeatureStore.apply` takes them."""
        return [getattr(self, f.name) for f in fields(self)]


def _sources(settings: Settings) -> tuple[DataSource, DataSource]:
    """(indicators, windows) offline sources, where aicash writes them for the settings' mode."""
    if settings.mode == "cluster":
        return (
            PostgreSQLSource(
                name="candle_indicators_source",
                table=f"{PG_SCHEMA}.{INDICATORS_TABLE}",
                timestamp_field=TIMESTAMP_FIELD,
            ),
            PostgreSQLSource(
                name="indicator_windows_source",
                table=f"{PG_SCHEMA}.{WINDOWS_TABLE}",
                timestamp_field=TIMESTAMP_FIELD,
            ),
        )
    indicators_path, windows_path = offline_paths(settings.aicash_home)
    return (
        FileSource(
            name="candle_indicators_source", path=str(indicators_path), timestamp_field=TIMESTAMP_FIELD,
            file_format=ParquetFormat(),
        ),
        FileSource(
            name="indicator_windows_source", path=str(windows_path), timestamp_field=TIMESTAMP_FIELD,
            file_format=ParquetFormat(),
        ),
    )


def build(settings: Settings) -> FeatureRepo:
    """The repository's objects for `settings` (only the sources' location depends on them)."""
    # The traded instrument (EURUSD, BTC-USD): every feature describes one.
    symbol = Entity(
        name="symbol", join_keys=["symbol"], value_type=ValueType.STRING, description="Instrument, e.g. EURUSD."
    )
    # The bar length (1h, 4h, ...): the same symbol has different indicators on each timeframe.
    timeframe = Entity(
        name="timeframe", join_keys=["timeframe"], value_type=ValueType.STRING, description="Bar length, e.g. 1h."
    )
    # candle_indicators_source: every bar's indicators (aicash.feature_tables, from market_candles): the history
    # that training joins point-in-time. indicator_windows_source: the latest model window per series, rewritten
    # at each materialization: it feeds only the online store, so no window is ever built per historical bar.
    candle_indicators_source, indicator_windows_source = _sources(settings)
    # The one list of indicator names, per bar: training joins it point-in-time, the service reads the latest.
    technical_indicators = FeatureView(
        name="technical_indicators",
        entities=[symbol, timeframe],
        ttl=FEATURE_TTL,
        schema=[Field(name=c, dtype=Float64, description=INDICATOR_DESCRIPTIONS[c]) for c in INDICATOR_COLUMNS],
        source=candle_indicators_source,
        online=True,
        description="Technical indicators of each bar (aicash.indicators.INDICATOR_COLUMNS).",
        tags=TAGS,
    )
    # The LSTM's input at serving time, ready-made: the last WINDOW_BARS bars x MODEL_FEATURES, float32,
    # flattened row-major, oldest bar first (aicash.windows.unflatten_window restores the matrix).
    indicator_window = FeatureView(
        name="indicator_window",
        entities=[symbol, timeframe],
        ttl=FEATURE_TTL,
        schema=[
            Field(
                name=WINDOW_FIELD,
                dtype=Array(Float32),
                description=f"{WINDOW_BARS} x {len(MODEL_FEATURES)} window of MODEL_FEATURES, row-major, oldest first.",
            )
        ],
        source=indicator_windows_source,
        online=True,
        description=f"Model input window of the last {WINDOW_BARS} bars, as of the latest materialized bar.",
        tags=TAGS,
    )
    # Exactly what signal model v1 consumes at serving time: the window for the LSTM, the latest bar's
    # indicators for the rule-signal blend and the response. A new model input gets signal_model_v2.
    signal_model_v1 = FeatureService(
        name="signal_model_v1",
        features=[technical_indicators, indicator_window],
        description=f"Online inputs of {MODEL_NAME} v1.",
        tags=TAGS,
    )
    return FeatureRepo(
        symbol=symbol,
        timeframe=timeframe,
        candle_indicators_source=candle_indicators_source,
        indicator_windows_source=indicator_windows_source,
        technical_indicators=technical_indicators,
        indicator_window=indicator_window,
        signal_model_v1=signal_model_v1,
    )


_OBJECT_NAMES = tuple(f.name for f in fields(FeatureRepo))


@functools.cache
def _from_environment() -> FeatureRepo:
    return build(load_settings())


def __getattr__(name: str) -> Any:
    """Feast's CLI reads `repo.symbol`, `repo.technical_indicators`, ...: built from the environment on first use."""
    if name in _OBJECT_NAMES:
        return getattr(_from_environment(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_OBJECT_NAMES])
