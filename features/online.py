"""The inference service's one call into the feature store: a symbol's latest features, through `signal_model_v1`."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from aicash.feature_tables import WINDOW_FIELD
from aicash.indicators import INDICATOR_COLUMNS
from aicash.market.candles import check_timeframe, normalize_symbol
from aicash.windows import WINDOW_SIZE, unflatten_window

if TYPE_CHECKING:
    from feast import FeatureService, FeatureStore

FEATURE_SERVICE = "signal_model_v1"


class NoOnlineFeaturesError(ValueError):
    """The online store has no (complete, consistent) features for the symbol: unknown, or not materialized."""


@dataclass(frozen=True)
class OnlineFeatures:
    """A series' latest materialized features: the bar's indicators and the model window ending at that bar."""

    symbol: str
    timeframe: str
    indicators: dict[str, float]  # INDICATOR_COLUMNS of the latest bar
    window: np.ndarray  # float32 (WINDOW_BARS, len(MODEL_FEATURES)), oldest bar first; window[-1] is the latest bar
    event_timestamp: datetime  # the latest bar's timestamp (UTC)


# FeatureStore.get_feature_service rebuilds the service from the registry proto on every call (~1 ms, as long as
# a whole lookup): looked up once per store instead. A re-applied service reaches a service through a new store.
_services: weakref.WeakKeyDictionary[FeatureStore, FeatureService] = weakref.WeakKeyDictionary()


def _service(store: FeatureStore) -> FeatureService:
    """The `signal_model_v1` feature service of `store`, looked up once."""
    service = _services.get(store)
    if service is None:
        service = _services[store] = store.get_feature_service(FEATURE_SERVICE)
    return service


def online_features(store: FeatureStore, symbol: str, timeframe: str = "1h") -> OnlineFeatures:
    """The latest features of (`symbol`, `timeframe`) from the online store, via `get_online_features` with the
    `signal_model_v1` feature service.

    Raises `BadSymbolError` (a ValueError) for a malformed symbol or timeframe, and `NoOnlineFeaturesError`
    (a ValueError) when the online store has nothing for the series (unknown or never materialized), no window
    (fewer than WINDOW_BARS bars after the warm-up), or a window that does not end at the latest bar.
    """
    symbol, timeframe = normalize_symbol(symbol), check_timeframe(timeframe)
    response = store.get_online_features(
        features=_service(store), entity_rows=[{"symbol": symbol, "timeframe": timeframe}]
    )
    # The response's protobuf read directly (one row): OnlineResponse.to_dict() converts every value through a
    # generic type switch and drops the timestamps' sub-seconds; this is the hot path of every prediction.
    proto = response.proto
    row = {name: (vector.values[0], vector.event_timestamps[0]) for name, vector in
           zip(proto.metadata.feature_names.val, proto.results, strict=True)}
    if any(row[name][0].WhichOneof("val") is None for name in INDICATOR_COLUMNS):
        raise NoOnlineFeaturesError(
            f"no online features for {symbol} {timeframe}: the series is unknown or not materialized "
            "(see `aicash data list`, then run `aicash features materialize`)"
        )
    window_value, window_ts = row[WINDOW_FIELD]
    if window_value.WhichOneof("val") is None:
        raise NoOnlineFeaturesError(
            f"no model window for {symbol} {timeframe}: it needs more bars after the warm-up; ingest more candles "
            "and run `aicash features materialize`"
        )
    bar_ts = row[INDICATOR_COLUMNS[0]][1]
    if bar_ts != window_ts:
        raise NoOnlineFeaturesError(
            f"{symbol} {timeframe}: the window ends at {window_ts.ToDatetime(UTC).isoformat()} but the latest bar is "
            f"{bar_ts.ToDatetime(UTC).isoformat()}: a materialization is running or was cut short; retry, or run "
            "`aicash features materialize`"
        )
    return OnlineFeatures(
        symbol=symbol,
        timeframe=timeframe,
        indicators={name: row[name][0].double_val for name in INDICATOR_COLUMNS},
        window=unflatten_window(np.fromiter(window_value.float_list_val.val, dtype=np.float32, count=WINDOW_SIZE)),
        event_timestamp=bar_ts.ToDatetime(UTC),
    )


def probe(store: FeatureStore) -> None:
    """Read a row that does not exist through `signal_model_v1`: returns when the registry and the online store
    answer (with nothing), raises whatever they raise when they cannot be reached."""
    store.get_online_features(features=_service(store), entity_rows=[{"symbol": "__probe__", "timeframe": "1h"}])
