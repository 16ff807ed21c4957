"""Hand-made out-of-sample figures and search evidence, for tests of the gate and of what reports show."""

from __future__ import annotations

from typing import Any

from aicash.training.metrics import Metrics


def figures(accuracy: float = 0.6, win_rate: float | None = 0.56, trades: int = 200, sharpe: float = 1.5,
            directional: float | None = 0.6) -> Metrics:
    """A predictor's pooled figures over 1,000 samples."""
    return Metrics(samples=1000, accuracy=accuracy, trades=trades, coverage=trades / 1000, win_rate=win_rate,
                   average_confidence=0.6, calibration_error=0.03, cumulative_return=0.05, sharpe=sharpe,
                   confusion=[[1, 0, 0], [0, 1, 0], [0, 0, 1]], directional_accuracy=directional,
                   information_coefficient=0.05)


def search_block(dsr: float = 0.99, pbo: float | None = 0.1, trials: int = 16) -> dict[str, Any]:
    """metrics.json's `search` statistics (`aicash.training.overfitting.search_evidence`'s shape)."""
    return {"trials": trials, "sharpe_variance": 0.0004,
            "deflated_sharpe": {"probability": dsr, "sharpe": 0.05, "expected_max_sharpe": 0.03, "n_trials": trials,
                                "observations": 2931, "skewness": 0.1, "kurtosis": 4.2},
            "pbo": None if pbo is None else {"probability": pbo, "splits": 12870, "n_trials": trials, "n_blocks": 16}}
