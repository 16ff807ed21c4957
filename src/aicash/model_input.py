"""What the signal model consumes: which features, over how many bars. Shared by the feature store's
window view, the trainer and the inference service."""

from __future__ import annotations

from aicash.feature_names import INDICATOR_COLUMNS

MODEL_FEATURES: tuple[str, ...] = INDICATOR_COLUMNS
WINDOW_BARS = 64  # bars of history per prediction (the LSTM's sequence length)
MODEL_NAME = "signal-lstm"
