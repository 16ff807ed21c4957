"""The model window: layout, dtype, and refusal of short series."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aicash.model_input import MODEL_FEATURES, WINDOW_BARS
from aicash.windows import WINDOW_SHAPE, WINDOW_SIZE, flatten_window, unflatten_window, window_matrix


def _frame(rows: int) -> pd.DataFrame:
    values = np.arange(rows * len(MODEL_FEATURES), dtype=np.float64).reshape(rows, len(MODEL_FEATURES))
    return pd.DataFrame(values, columns=list(MODEL_FEATURES)).assign(ts=pd.date_range("2024", periods=rows, freq="h"))


def test_window_is_the_last_bars_oldest_first_in_model_feature_order() -> None:
    frame = _frame(WINDOW_BARS + 10)
    matrix = window_matrix(frame)
    assert matrix.shape == WINDOW_SHAPE == (WINDOW_BARS, len(MODEL_FEATURES)) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[0], frame[list(MODEL_FEATURES)].iloc[10].to_numpy(np.float32))
    np.testing.assert_array_equal(matrix[-1], frame[list(MODEL_FEATURES)].iloc[-1].to_numpy(np.float32))


def test_flattening_is_row_major_and_reversible() -> None:
    matrix = window_matrix(_frame(WINDOW_BARS))
    flat = flatten_window(matrix)
    assert flat.shape == (WINDOW_SIZE,)
    bar, feature = 5, 3
    assert flat[bar * len(MODEL_FEATURES) + feature] == matrix[bar, feature]
    np.testing.assert_array_equal(unflatten_window(flat.tolist()), matrix)


def test_short_series_and_wrong_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match=f"needs {WINDOW_BARS} bars"):
        window_matrix(_frame(WINDOW_BARS - 1))
    with pytest.raises(ValueError, match="holds"):
        unflatten_window(np.zeros(WINDOW_SIZE - 1))
    with pytest.raises(ValueError, match="shape"):
        flatten_window(np.zeros((WINDOW_BARS - 1, len(MODEL_FEATURES))))
