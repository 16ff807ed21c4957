"""A small search as the model-search pipeline records it: trials, the "search" block, equity curves."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine

from aicash.experiments import record_experiment

SPACE = {"families": {"gru": {"hidden_size": [16, 32]}, "lightgbm": {"num_leaves": [7, 15]}}}
EXPECTED_MAX = 0.0312  # the per-bar Sharpe the best of 4 trials reaches by luck


def make_trials() -> list[dict[str, Any]]:
    """Four trials; the third (lightgbm, num_leaves=15) wins; the fourth never traded (figures undefined)."""
    def trial(number: int, family: str, params: dict[str, Any], sharpe: float | None, trades: int) -> dict[str, Any]:
        return {"number": number, "family": family, "params": params, "accuracy": 0.4 + number / 100,
                "directional_accuracy": 0.5 + number / 50 if trades else None, "win_rate": 0.55 if trades else None,
                "trades": trades, "coverage": trades / 1000, "calibration_error": 0.05, "sharpe": sharpe,
                "information_coefficient": 0.02 * number if trades else math.nan, "seconds": 1.5 * number,
                "selected": number == 3}
    return [trial(1, "gru", {"hidden_size": 16}, 0.4, 120), trial(2, "gru", {"hidden_size": 32}, -0.2, 80),
            trial(3, "lightgbm", {"num_leaves": 15}, 2.5, 300), trial(4, "lightgbm", {"num_leaves": 7}, None, 0)]


def make_search(trials: int = 4) -> dict[str, Any]:
    """metrics.json's "search" block of that search (per-bar figures: 2.5 annualised = 0.05 per bar)."""
    return {"experiment_id": None, "trials": trials, "selected_trial": 3, "family": "lightgbm",
            "params": {"num_leaves": 15}, "sharpe_variance": 0.0004,
            "deflated_sharpe": {"probability": 0.97, "sharpe": 0.05, "expected_max_sharpe": EXPECTED_MAX,
                                "n_trials": trials, "observations": 2500, "skewness": 0.1, "kurtosis": 4.2},
            "pbo": {"probability": 0.2, "splits": 12870, "n_trials": trials, "n_blocks": 16}}


def make_equity(bars: int = 1500) -> pd.DataFrame:
    """Cumulative log returns of the winner, two baselines and buy-and-hold."""
    rng = np.random.default_rng(0)
    index = pd.date_range("2025-01-01", periods=bars, freq="h", tz="UTC", name="ts")
    steps = rng.normal(0, 0.001, (bars, 4)) + np.array([0.0004, 0.0, 0.0001, 0.0])
    return pd.DataFrame(steps.cumsum(axis=0), index=index, columns=["model", "logistic", "rule", "buy_and_hold"])


def record(engine: Engine, equity: pd.DataFrame | None = None, **changes: Any) -> int:
    """Record the search (with `changes` to the keyword arguments); its id."""
    arguments: dict[str, Any] = {"pipeline": "model-search", "series": ["EURUSD"], "timeframe": "1h", "space": SPACE,
                                 "seed": 7, "sampler": "random", "trials": make_trials(), "search": make_search()}
    return record_experiment(engine, **{**arguments, **changes}, equity=equity)
