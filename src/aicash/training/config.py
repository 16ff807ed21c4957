"""The training experiment described as data: labels, network, optimiser, walk-forward folds, trading rules."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from aicash.model_input import WINDOW_BARS

Family = Literal["lstm", "gru", "tcn", "linear", "lightgbm"]
_TORCH_FIT = ("learning_rate", "weight_decay", "batch_size", "max_epochs", "patience")
FAMILY_PARAMETERS: dict[str, tuple[str, ...]] = {
    "lstm": ("hidden_size", "num_layers", "dropout", *_TORCH_FIT),
    "gru": ("hidden_size", "num_layers", "dropout", *_TORCH_FIT),
    "tcn": ("hidden_size", "num_layers", "kernel_size", "dropout", *_TORCH_FIT),
    "linear": _TORCH_FIT,
    "lightgbm": ("num_leaves", "n_estimators", "min_child_samples", "tree_learning_rate", "feature_fraction"),
}
"""The TrainingConfig fields each model family uses (a search space may vary only these, plus the shared ones)."""


class TrainingConfig(BaseModel):
    """Everything that decides a training run; stored with the model (metrics.json) so a run can be repeated.

    The defaults train and evaluate the 4,950-bar EURUSD sample walk-forward in well under two minutes on two
    CPU cores.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    horizon_bars: int = Field(default=4, ge=1, le=500)
    """Bars ahead whose log return the label describes (and how long a traded signal is held)."""
    flat_threshold: float = Field(default=0.5, ge=0.0, le=10.0)
    """A move is flat (HOLD) when |horizon log return| < flat_threshold x volatility_20 x sqrt(horizon_bars)."""
    window_bars: int = Field(default=WINDOW_BARS, ge=2, le=1024)
    """Bars of history per sample: the LSTM's sequence length (serving sends windows of this length)."""
    family: Family = "lstm"
    """The model family: lstm, gru, tcn (dilated causal convolutions), linear (multinomial logistic regression on
    the decision bar's standardised features; all four in torch) or lightgbm (gradient-boosted trees on features
    summarising the window)."""
    hidden_size: int = Field(default=32, ge=1, le=1024)
    """LSTM/GRU hidden units per layer; TCN channels."""
    num_layers: int = Field(default=1, ge=1, le=8)
    """Stacked LSTM/GRU layers; TCN levels (level i dilates by 2**i)."""
    kernel_size: int = Field(default=3, ge=2, le=16)
    """TCN convolution width in bars."""
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Dropout before the output layer (and between recurrent layers or TCN levels when there are several)."""
    num_leaves: int = Field(default=15, ge=2, le=4096)
    """LightGBM: leaves per tree."""
    n_estimators: int = Field(default=200, ge=1, le=10000)
    """LightGBM: most boosting rounds (early stopping on the validation block usually ends sooner)."""
    min_child_samples: int = Field(default=20, ge=1, le=100000)
    """LightGBM: fewest training samples in a leaf."""
    tree_learning_rate: float = Field(default=0.05, gt=0.0, le=1.0)
    """LightGBM: shrinkage of each tree's contribution."""
    feature_fraction: float = Field(default=0.9, gt=0.0, le=1.0)
    """LightGBM: share of the features each tree may split on (sampled with `seed`)."""
    learning_rate: float = Field(default=2e-3, gt=0.0, le=1.0)
    """Adam's learning rate."""
    weight_decay: float = Field(default=1e-4, ge=0.0, le=1.0)
    """Adam's L2 penalty on the weights."""
    batch_size: int = Field(default=128, ge=1, le=65536)
    """Samples per optimiser step."""
    max_epochs: int = Field(default=15, ge=1, le=1000)
    """Upper bound of passes over the training samples."""
    patience: int = Field(default=3, ge=1, le=1000)
    """Epochs without a lower validation loss before training stops (the best epoch's weights are kept)."""
    seed: int = Field(default=7, ge=0)
    """Seed of weight initialisation, shuffling and dropout (LightGBM: of its sampling): the same seed and data give
    the same model."""
    torch_threads: int = Field(default=1, ge=1, le=64)
    """CPU threads for torch (and LightGBM). One is the fastest for this small LSTM on a shared two-core machine (two
    threads spin against each other and against other processes)."""
    n_folds: int = Field(default=5, ge=1, le=100)
    """Walk-forward test blocks, in time order."""
    first_test_fraction: float = Field(default=0.4, gt=0.0, lt=1.0)
    """Share of the timeline (of sample time stamps) before the first test block: the first fold's history."""
    validation_fraction: float = Field(default=0.15, gt=0.0, lt=1.0)
    """Latest share of each training period held out (after a purge gap) for early stopping."""
    max_train_samples: int | None = Field(default=None, ge=1)
    """None: expanding training window; a number: rolling window of that many latest training samples."""
    confidence_threshold: float = Field(default=0.4, ge=0.0, le=1.0)
    """A BUY/SELL prediction is traded only when its probability reaches this (three classes: 1/3 is chance)."""
    cost_per_trade: float = Field(default=1e-4, ge=0.0, le=0.1)
    """Round-trip cost of one trade in return terms (1e-4 = 1 basis point), charged on the trade's notional."""
    reference_rows: int = Field(default=5000, ge=1, le=1_000_000)
    """Rows of training indicators kept as the drift monitor's reference sample."""
