"""Training fixtures; the data helpers are in tests/support/training.py."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.support.training import synth_frame


@pytest.fixture(scope="session")
def synth() -> pd.DataFrame:
    return synth_frame()
