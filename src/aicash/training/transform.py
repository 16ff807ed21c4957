"""Raw indicator windows -> stationary, standardised model inputs, as a TorchScript-able torch module.

Price-level indicators (EMAs, Bollinger bands, ATR, MACD) drift with the price, so a model trained on 2017 levels
would meet unseen values in 2018. They are made relative to `ema_50`, using indicator values only: the service
receives indicators, never the close price. Then each feature is standardised with a mean and standard deviation
fitted on training windows only.

This module is the first layer of the exported model (`model.pt`): serving feeds raw indicator values and
cannot apply a different transform or scaler than training did. `scaler.json` repeats the numbers for people
and for the drift report.
"""

from collections.abc import Sequence
from types import MappingProxyType

import numpy as np
import torch
from torch import nn

ANCHOR = "ema_50"  # the price level every price-like indicator is divided by
CLIP = 10.0  # standardised values are clipped to +-CLIP: one bad tick cannot saturate the LSTM

# How each feature becomes stationary; features not listed are already bounded or scale-free (identity).
TRANSFORMS = MappingProxyType(
    {
        "ema_12": "log_ratio_to_ema_50",
        "ema_26": "log_ratio_to_ema_50",
        "bb_upper": "log_ratio_to_ema_50",
        "bb_lower": "log_ratio_to_ema_50",
        "macd_line": "ratio_to_ema_50",
        "macd_signal": "ratio_to_ema_50",
        "macd_histogram": "ratio_to_ema_50",
        "atr_value": "ratio_to_ema_50",
        "ema_50": "log_ratio_to_last_ema_50",  # the trend's shape over the window, ending at 0
    }
)
_EPS = 1e-12


def transform_kind(feature: str) -> str:
    return TRANSFORMS.get(feature, "identity")


class IndicatorTransform(nn.Module):
    """(batch, window, features) raw indicators -> stationary features, standardised and clipped."""

    # Buffer types, for TorchScript and mypy (this module avoids `from __future__ import annotations`, whose
    # string annotations TorchScript cannot resolve on class attributes).
    log_ratio_mask: torch.Tensor
    ratio_mask: torch.Tensor
    anchor_mask: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, features: Sequence[str]) -> None:
        super().__init__()
        names = list(features)
        if ANCHOR not in names:
            raise ValueError(f"the feature list must contain {ANCHOR!r} (the price level others are relative to)")
        kinds = [transform_kind(f) for f in names]
        self.features = names
        self.anchor_index: int = names.index(ANCHOR)
        self.eps: float = _EPS
        self.clip: float = CLIP
        self.register_buffer("log_ratio_mask", torch.tensor([k == "log_ratio_to_ema_50" for k in kinds]))
        self.register_buffer("ratio_mask", torch.tensor([k == "ratio_to_ema_50" for k in kinds]))
        self.register_buffer("anchor_mask", torch.tensor([k == "log_ratio_to_last_ema_50" for k in kinds]))
        self.register_buffer("mean", torch.zeros(len(names)))
        self.register_buffer("std", torch.ones(len(names)))

    def stationary(self, raw: torch.Tensor) -> torch.Tensor:
        """The relative (not yet standardised) features."""
        anchor = raw[:, :, self.anchor_index : self.anchor_index + 1].clamp_min(self.eps)
        ratio = raw / anchor
        log_ratio = torch.log(ratio.clamp_min(self.eps))
        trend = torch.log(anchor / anchor[:, -1:, :]).expand_as(raw)
        out = torch.where(self.log_ratio_mask, log_ratio, torch.where(self.ratio_mask, ratio, raw))
        return torch.where(self.anchor_mask, trend, out)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        scaled = (self.stationary(raw) - self.mean) / self.std
        return torch.nan_to_num(scaled, nan=0.0).clamp(-self.clip, self.clip)

    @torch.no_grad()
    def fit(self, windows: Sequence[np.ndarray] | np.ndarray) -> "IndicatorTransform":
        """Fit mean and standard deviation on training windows (an array or chunks of (n, window, features)).

        Statistics run over every bar of every window, in float64; constant features get a scale of 1.
        """
        chunks = [windows] if isinstance(windows, np.ndarray) else list(windows)
        n, total, squares = 0, np.zeros(len(self.features)), np.zeros(len(self.features))
        for chunk in chunks:
            values = self.stationary(torch.from_numpy(np.asarray(chunk, dtype=np.float32))).double().numpy()
            values = values.reshape(-1, values.shape[-1])
            n += len(values)
            total += values.sum(axis=0)
            squares += (values**2).sum(axis=0)
        if n == 0:
            raise ValueError("cannot fit the scaler on no training windows")
        mean = total / n
        std = np.sqrt(np.maximum(squares / n - mean**2, 0.0))
        std = np.where(std > 1e-9 * np.maximum(np.abs(mean), 1.0), std, 1.0)
        self.mean.copy_(torch.from_numpy(mean).float())
        self.std.copy_(torch.from_numpy(std).float())
        return self

    def describe(self) -> dict[str, object]:
        """The transform and fitted scaler as JSON-ready data (scaler.json)."""
        return {
            "features": self.features,
            "transforms": {f: transform_kind(f) for f in self.features},
            "anchor": ANCHOR,
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "clip": CLIP,
            "applied": "inside model.pt: standardised = clip((stationary(raw) - mean) / std, -clip, clip)",
        }
