"""The networks: classifiers over standardised windows (LSTM, GRU, TCN, linear), and the servable model around them.

The network knows nothing of training (that is `trainer.py`), as in qlib's split of model and trainer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from aicash.training.config import TrainingConfig
from aicash.training.transform import IndicatorTransform

N_CLASSES = 3  # SELL, HOLD, BUY


class LSTMClassifier(nn.Module):
    """(batch, window, features) standardised inputs -> class logits from the last step's hidden state."""

    def __init__(self, n_features: int, hidden_size: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            n_features, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(self.dropout(out[:, -1, :]))


class GRUClassifier(nn.Module):
    """(batch, window, features) standardised inputs -> class logits from the last step's GRU hidden state."""

    def __init__(self, n_features: int, hidden_size: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        self.gru = nn.GRU(
            n_features, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(x)
        return self.head(self.dropout(out[:, -1, :]))


class CausalConvBlock(nn.Module):
    """One TCN level: a dilated convolution that sees only the current and earlier bars, ReLU, dropout, residual."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.left_pad: int = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(in_channels, channels, kernel_size, dilation=dilation)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv1d(in_channels, channels, 1) if in_channels != channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(nn.functional.pad(x, (self.left_pad, 0)))
        return torch.relu(self.dropout(torch.relu(out)) + self.skip(x))


class TCNClassifier(nn.Module):
    """A temporal convolutional network: `num_layers` causal levels dilated 1, 2, 4, ...; the last bar's output."""

    def __init__(self, n_features: int, channels: int, num_layers: int, kernel_size: int, dropout: float) -> None:
        super().__init__()
        self.levels = nn.Sequential(
            *[CausalConvBlock(n_features if i == 0 else channels, channels, kernel_size, 2**i, dropout)
              for i in range(num_layers)]
        )
        self.head = nn.Linear(channels, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.levels(x.transpose(1, 2))  # (batch, channels, window)
        return self.head(out[:, :, -1])


class LinearClassifier(nn.Module):
    """Multinomial logistic regression on the decision (last) bar's standardised features."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.head = nn.Linear(n_features, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x[:, -1, :])


TORCH_FAMILIES = ("lstm", "gru", "tcn", "linear")


def build_classifier(n_features: int, config: TrainingConfig) -> nn.Module:
    """The classifier of `config.family` (a torch family), sized by the config."""
    if config.family == "lstm":
        return LSTMClassifier(n_features, config.hidden_size, config.num_layers, config.dropout)
    if config.family == "gru":
        return GRUClassifier(n_features, config.hidden_size, config.num_layers, config.dropout)
    if config.family == "tcn":
        return TCNClassifier(n_features, config.hidden_size, config.num_layers, config.kernel_size, config.dropout)
    if config.family == "linear":
        return LinearClassifier(n_features)
    raise ValueError(f"family {config.family!r} is not a torch network: use one of {list(TORCH_FAMILIES)}")


class SignalNetwork(nn.Module):
    """Raw indicator windows -> class logits: the fitted transform, then the classifier."""

    def __init__(self, transform: IndicatorTransform, classifier: nn.Module) -> None:
        super().__init__()
        self.transform = transform
        self.classifier = classifier

    @classmethod
    def build(cls, features: Sequence[str], config: TrainingConfig) -> SignalNetwork:
        return cls(IndicatorTransform(features), build_classifier(len(features), config))

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.transform(raw))


class SignalProbabilities(nn.Module):
    """What is exported as model.pt: float32 (batch, window, features) raw indicators -> (batch, 3) probabilities."""

    def __init__(self, network: SignalNetwork) -> None:
        super().__init__()
        self.network = network

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network(raw), dim=-1)
