"""Which series a drift-triggered retraining asks for."""

from __future__ import annotations

import pandas as pd

from aicash.monitoring.retrain import training_arguments


def test_training_arguments_follow_the_production_models_series() -> None:
    current = pd.DataFrame({"symbol": ["GBPUSD", "EURUSD", "GBPUSD"]})
    assert training_arguments({"data": {"series": ["EURUSD/1h", "USDJPY/1h", "EURUSD/4h"]}}, current) == {
        "symbols": ["EURUSD", "USDJPY"], "timeframe": "1h"}
    assert training_arguments({}, current) == {"symbols": ["EURUSD", "GBPUSD"]}
    assert training_arguments({}, pd.DataFrame()) == {}
