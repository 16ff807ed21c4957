"""Indicators: the one list of names, sane values, and no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aicash.indicators import INDICATOR_COLUMNS, WARMUP_BARS, compute_indicators, with_indicators
from aicash.market.samples import load_sample
from aicash.market.synth import synth_universe


@pytest.fixture(scope="module")
def eurusd() -> pd.DataFrame:
    return load_sample("eurusd-1h")


def test_names_follow_the_frontend_payload() -> None:
    assert {"rsi_value", "adx_value", "ema_12", "ema_26", "ema_50", "macd_line", "macd_signal", "macd_histogram",
            "bb_upper", "bb_lower", "bb_percent_b", "atr_value", "stoch_k", "stoch_d", "log_return",
            "volatility_20"} == set(INDICATOR_COLUMNS)


def test_values_are_in_their_ranges(eurusd: pd.DataFrame) -> None:
    ind = compute_indicators(eurusd).iloc[WARMUP_BARS:]
    assert not ind.isna().any().any()
    for col in ("rsi_value", "adx_value", "stoch_k", "stoch_d"):
        assert ind[col].between(0, 100).all(), col
    assert (ind.bb_upper >= ind.bb_lower).all() and (ind.atr_value > 0).all()
    np.testing.assert_allclose(ind.macd_histogram, ind.macd_line - ind.macd_signal, atol=1e-12)
    close = eurusd.close.iloc[WARMUP_BARS:]
    np.testing.assert_allclose(ind.log_return, np.log(close / eurusd.close.shift(1).iloc[WARMUP_BARS:]))
    inside = (close - ind.bb_lower) / (ind.bb_upper - ind.bb_lower)
    np.testing.assert_allclose(ind.bb_percent_b, inside, rtol=1e-9)


def test_ema_matches_its_definition(eurusd: pd.DataFrame) -> None:
    """TA-Lib seeds the EMA with the SMA of the first 12 closes, then recurses with alpha = 2 / 13."""
    close = eurusd.close.to_numpy()
    ema = np.empty_like(close)
    ema[11] = close[:12].mean()
    for i in range(12, len(close)):
        ema[i] = ema[i - 1] + 2 / 13 * (close[i] - ema[i - 1])
    np.testing.assert_allclose(compute_indicators(eurusd).ema_12.to_numpy()[11:], ema[11:], rtol=1e-12)


@pytest.mark.parametrize("cut", [200, 1000, 3333, 4999])
def test_no_look_ahead(eurusd: pd.DataFrame, cut: int) -> None:
    """Values at time t do not change when later bars are appended."""
    full = compute_indicators(eurusd).iloc[:cut]
    truncated = compute_indicators(eurusd.iloc[:cut])
    pd.testing.assert_frame_equal(full, truncated, check_exact=False, rtol=1e-12, atol=1e-12)


def test_no_look_ahead_on_shocked_future(eurusd: pd.DataFrame) -> None:
    """Even a wild change to every later bar leaves earlier values untouched."""
    shocked = eurusd.copy()
    shocked.loc[3000:, ["open", "high", "low", "close"]] *= 3.0
    pd.testing.assert_frame_equal(compute_indicators(shocked).iloc[:3000], compute_indicators(eurusd).iloc[:3000])


def test_per_symbol_computation_does_not_mix_symbols() -> None:
    frames = [c.assign(symbol=s, timeframe="1h") for s, c in synth_universe(2, 300, 3, pd.Timedelta("1h"))]
    both = with_indicators(pd.concat(frames, ignore_index=True))
    alone = with_indicators(frames[1])
    got = both[both.symbol == "SYN002"][list(INDICATOR_COLUMNS)].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, alone[list(INDICATOR_COLUMNS)].reset_index(drop=True))
    assert len(both) == 2 * (300 - WARMUP_BARS + 1)
