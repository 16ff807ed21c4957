"""The networks: an LSTM classifier over standardised windows, and the servable model around it.

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


class SignalNetwork(nn.Module):
    """Raw indicator windows -> class logits: the fitted transform, then the classifier."""

    def __init__(self, transform: IndicatorTransform, classifier: LSTMClassifier) -> None:
        super().__init__()
        self.transform = transform
        self.classifier = classifier

    @classmethod
    def build(cls, features: Sequence[str], config: TrainingConfig) -> SignalNetwork:
        classifier = LSTMClassifier(len(features), config.hidden_size, config.num_layers, config.dropout)
        return cls(IndicatorTransform(features), classifier)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.transform(raw))


class SignalProbabilities(nn.Module):
    """What is exported as model.pt: float32 (batch, window, features) raw indicators -> (batch, 3) probabilities."""

    def __init__(self, network: SignalNetwork) -> None:
        super().__init__()
        self.network = network

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network(raw), dim=-1)
