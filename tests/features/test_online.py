"""The inference service's lookup: clear domain errors for what the online store cannot answer."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import Engine

from aicash.market.candles import BadSymbolError
from aicash.market.ingest import ingest_frame
from aicash.settings import Settings
from features import online, store


def test_unknown_or_unmaterialized_series_raise_a_value_error(
    applied: Settings, candles: dict[str, pd.DataFrame]
) -> None:
    fs = store.get_store(applied)
    with pytest.raises(online.NoOnlineFeaturesError, match="SYN001 1h: the series is unknown or not materialized"):
        online.online_features(fs, "SYN001")  # candles exist, nothing materialized yet
    store.materialize(applied)
    assert online.online_features(fs, "syn001").symbol == "SYN001"
    with pytest.raises(online.NoOnlineFeaturesError, match="NOPE 1h"):
        online.online_features(fs, "NOPE")
    with pytest.raises(online.NoOnlineFeaturesError, match="SYN001 4h"):
        online.online_features(fs, "SYN001", "4h")
    with pytest.raises(BadSymbolError, match="not a valid symbol"):
        online.online_features(fs, "no spaces!")
    assert issubclass(online.NoOnlineFeaturesError, ValueError) and issubclass(BadSymbolError, ValueError)


def test_a_series_too_short_for_a_window_says_so(applied: Settings, engine: Engine) -> None:
    from aicash.market.synth import synth_universe

    [(_, short)] = list(synth_universe(1, 100, seed=3, timeframe_step=pd.Timedelta("1h")))  # 51 bars after warm-up
    ingest_frame(engine, short, "SHORT", "1h")
    result = store.materialize(applied)
    assert result.views == {"technical_indicators": 1, "indicator_window": 0}
    with pytest.raises(online.NoOnlineFeaturesError, match="no model window for SHORT 1h"):
        online.online_features(store.get_store(applied), "SHORT")
