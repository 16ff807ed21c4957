"""The signal model's input window: the last `WINDOW_BARS` bars of `MODEL_FEATURES` of one series.

One layout everywhere (feature store, trainer, inference service): a float32 matrix of shape
(WINDOW_BARS, len(MODEL_FEATURES)), oldest bar first, columns in `MODEL_FEATURES` order. Stored as one
feature value it is flattened row-major (C order): element [bar, feature] sits at bar * len(MODEL_FEATURES) + feature.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aicash.model_input import MODEL_FEATURES, WINDOW_BARS

WINDOW_SIZE = WINDOW_BARS * len(MODEL_FEATURES)
WINDOW_SHAPE = (WINDOW_BARS, len(MODEL_FEATURES))


def window_matrix(indicators: pd.DataFrame, bars: int = WINDOW_BARS) -> np.ndarray:
    """The last `bars` rows of `MODEL_FEATURES` of one series sorted by time, as float32 (bars, features).

    Raises ValueError when the series has fewer than `bars` rows (after the indicators' warm-up).
    """
    if len(indicators) < bars:
        raise ValueError(f"a window needs {bars} bars with indicators; the series has {len(indicators)}")
    return np.ascontiguousarray(indicators[list(MODEL_FEATURES)].to_numpy(dtype=np.float32)[-bars:])


def flatten_window(matrix: np.ndarray) -> np.ndarray:
    """The window as one row-major float32 vector of WINDOW_SIZE values (the stored feature value)."""
    if matrix.shape != WINDOW_SHAPE:
        raise ValueError(f"a window has shape {WINDOW_SHAPE}, got {matrix.shape}")
    return np.asarray(matrix, dtype=np.float32).reshape(-1)


def unflatten_window(values: np.ndarray | list[float]) -> np.ndarray:
    """The (WINDOW_BARS, len(MODEL_FEATURES)) float32 matrix back from its stored, flattened form."""
    flat = np.asarray(values, dtype=np.float32)
    if flat.shape != (WINDOW_SIZE,):
        raise ValueError(f"a stored window holds {WINDOW_SIZE} values, got {flat.size}")
    return flat.reshape(WINDOW_SHAPE)
