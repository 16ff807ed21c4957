"""Training fixtures; the data helpers are in tests/support/training.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aicash.indicators import with_indicators
from aicash.market.samples import load_sample
from aicash.training.dataset import build_samples
from tests.support.training import TINY, synth_frame


@pytest.fixture(scope="session")
def synth() -> pd.DataFrame:
    return synth_frame()


@pytest.fixture(scope="session")
def real_windows() -> np.ndarray:
    """32 windows (TINY's length) of real EURUSD indicators (the bundled sample), spread over the series."""
    frame = with_indicators(load_sample("eurusd-1h").assign(symbol="EURUSD", timeframe="1h"))
    samples = build_samples(frame, TINY)
    return np.ascontiguousarray(samples.windows(np.linspace(0, len(samples) - 1, 32).astype(int)))
