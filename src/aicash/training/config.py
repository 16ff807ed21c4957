"""The training experiment described as data: labels, network, optimiser, walk-forward folds, trading rules."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from aicash.model_input import WINDOW_BARS


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
    hidden_size: int = Field(default=32, ge=1, le=1024)
    """LSTM hidden units per layer."""
    num_layers: int = Field(default=1, ge=1, le=8)
    """Stacked LSTM layers."""
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Dropout before the output layer (and between LSTM layers when there are several)."""
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
    """Seed of weight initialisation, shuffling and dropout: the same seed and data give the same model."""
    torch_threads: int = Field(default=1, ge=1, le=64)
    """CPU threads for torch. One is the fastest for this small LSTM on a shared two-core machine (two
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
