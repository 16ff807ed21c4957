import numpy as np

from aicash.signals.rule import SIGNALS
from aicash.training.labels import DOWN, FLAT, NO_LABEL, UP, direction_labels, horizon_log_returns


def test_class_order_is_the_platforms():
    assert (SIGNALS[DOWN], SIGNALS[FLAT], SIGNALS[UP]) == ("SELL", "HOLD", "BUY")


def test_horizon_returns_on_hand_made_prices():
    close = np.array([100.0, 101.0, 99.0, 99.0, 103.0])
    r = horizon_log_returns(close, 2)
    assert np.allclose(r[:3], np.log([99 / 100, 99 / 101, 103 / 99]))
    assert np.isnan(r[3:]).all()  # the last `horizon` bars have no known future


def test_labels_up_down_flat_with_a_volatility_band_scaled_by_sqrt_horizon():
    close = np.array([100.0, 100.5, 102.0, 101.0, 99.0, 99.2, 99.1, 99.3])
    vol = np.full(len(close), 0.01)  # band = 0.5 * 0.01 * sqrt(2) = 0.00707
    labels = direction_labels(horizon_log_returns(close, 2), vol, horizon=2, flat_threshold=0.5)
    # returns: +1.98 %, +0.50 %, -2.96 %, -1.80 %, +0.10 %, +0.10 %, n/a, n/a
    assert labels.tolist() == [UP, FLAT, DOWN, DOWN, FLAT, FLAT, NO_LABEL, NO_LABEL]


def test_a_wider_band_turns_moves_flat_and_nan_volatility_gives_no_label():
    close = np.array([100.0, 100.5, 102.0, 101.0, 99.0])
    vol = np.array([0.01, 0.01, np.nan, 0.01, 0.01])
    labels = direction_labels(horizon_log_returns(close, 1), vol, horizon=1, flat_threshold=1.0)
    # returns: +0.50 % (< 1 %: flat), +1.48 % (up), -0.99 % (volatility unknown), -2.00 % (down), n/a
    assert labels.tolist() == [FLAT, UP, NO_LABEL, DOWN, NO_LABEL]
