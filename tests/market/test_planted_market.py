"""The planted-signal market: its returns carry the autocorrelation asked for at the lag asked for, nothing at 0."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aicash.market.synth import planted_market


def _autocorrelation(frame: pd.DataFrame, lag: int) -> float:
    returns = np.diff(np.log(frame["close"].to_numpy()))
    return float(np.corrcoef(returns[lag:], returns[:-lag])[0, 1])


@pytest.mark.parametrize(("strength", "lag"), [(0.0, 10), (0.3, 10), (0.5, 10), (0.5, 7)])
def test_returns_carry_the_planted_autocorrelation_at_its_lag(strength: float, lag: int) -> None:
    frame = planted_market(6000, strength, seed=4, lag=lag)
    assert abs(_autocorrelation(frame, lag) - strength) < 0.05
    assert abs(_autocorrelation(frame, lag + 1)) < 0.05  # nowhere else


def test_candles_are_valid_and_deterministic() -> None:
    frame = planted_market(500, 0.4, seed=1)
    assert frame.equals(planted_market(500, 0.4, seed=1)) and not frame.equals(planted_market(500, 0.4, seed=2))
    assert (frame["high"] >= frame[["open", "close"]].max(axis=1)).all()
    assert (frame["low"] <= frame[["open", "close"]].min(axis=1)).all()
    assert frame["ts"].diff().dropna().eq(pd.Timedelta("1h")).all()


@pytest.mark.parametrize(("bars", "strength", "words"), [(100, 1.0, "strength"), (5, 0.2, "lag")])
def test_bad_arguments_are_named(bars: int, strength: float, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        planted_market(bars, strength, seed=0)
