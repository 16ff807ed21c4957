"""The rule-signal backtest: next-bar returns per symbol, costs on position changes, flat start per symbol."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aicash.signals.backtest import add_forward_returns, bars_per_year, performance


def test_forward_returns_stay_within_a_symbol() -> None:
    frame = pd.DataFrame({"symbol": ["A", "A", "B", "B"], "close": [1.0, 2.0, 10.0, 5.0]})
    fwd = add_forward_returns(frame)["fwd_return"].tolist()
    assert fwd[0] == pytest.approx(np.log(2)) and np.isnan(fwd[1])
    assert fwd[2] == pytest.approx(np.log(0.5)) and np.isnan(fwd[3])


def test_costs_are_paid_on_each_change_and_each_symbol_starts_flat() -> None:
    ts = pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC")
    frame = pd.DataFrame({"symbol": ["A"] * 3 + ["B"] * 3, "ts": list(ts) * 2,
                          "fwd_return": [0.01, -0.01, 0.02, 0.01, 0.01, 0.01]})
    pos = np.array([1, -1, -1, 1, 1, 0])
    perf = performance(frame, pos, cost_bps=10.0, periods_per_year=1.0)
    # A: +0.01 -0.001 | +0.01 -0.002 | -0.02 ; B: +0.01 -0.001 | +0.01 | 0 -0.001
    assert perf["total_log_return"] == pytest.approx(0.01 - 0.001 + 0.01 - 0.002 - 0.02 + 0.01 - 0.001 + 0.01 - 0.001)
    assert perf["trades"] == 4 and perf["hit_rate"] == pytest.approx(4 / 5) and perf["exposure"] == pytest.approx(5 / 6)


def test_bars_per_year_is_observed() -> None:
    ts = pd.date_range("2024-01-01", periods=24 * 7 + 1, freq="h", tz="UTC")
    assert bars_per_year(pd.DataFrame({"symbol": "A", "ts": ts})) == pytest.approx(24 * 365.25)
