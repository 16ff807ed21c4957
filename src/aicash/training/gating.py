"""The promotion gate: a trained model becomes a registry candidate only if its out-of-sample figures pass.

Checks, each with the numbers in its reason:
1. the deployable model was trained on at least `min_training_samples` samples;
2. walk-forward accuracy >= `min_accuracy`;
3. win rate of traded signals >= `min_win_rate` over at least `min_trades` trades (a win rate over a handful
   of trades is noise; a model that never trades fails);
4. it beats every baseline: accuracy above the best baseline accuracy, and Sharpe ratio after costs above the
   best baseline Sharpe (a signal that classifies well but loses money, or the reverse, is not better).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aicash.training.metrics import Metrics


class GateThresholds(Protocol):
    """The gate's settings (`aicash.settings.Settings` has them)."""

    min_training_samples: int
    min_accuracy: float
    min_win_rate: float


class Evaluated(Protocol):
    """What the gate reads from a training result."""

    @property
    def training_samples(self) -> int: ...

    @property
    def model_metrics(self) -> Metrics: ...

    @property
    def baseline_metrics(self) -> Mapping[str, Metrics]: ...


@dataclass(frozen=True)
class EvaluationSummary:
    """The gate's input without a trained model (hand-made in tests, or read back from metrics.json)."""

    training_samples: int
    model_metrics: Metrics
    baseline_metrics: Mapping[str, Metrics]

    @classmethod
    def from_metrics_json(cls, data: Mapping[str, Any]) -> EvaluationSummary:
        return cls(
            int(data["training_samples"]),
            Metrics.from_dict(data["aggregate"]["model"]),
            {name: Metrics.from_dict(m) for name, m in data["aggregate"]["baselines"].items()},
        )


@dataclass(frozen=True)
class GateDecision:
    approved: bool
    reasons: list[str]  # every failed check, with the numbers; empty when approved
    passed: list[str] = field(default_factory=list)  # the checks that passed, with the numbers

    def to_dict(self) -> dict[str, object]:
        return {"approved": self.approved, "reasons": list(self.reasons), "passed": list(self.passed)}


MIN_TRADES = 30  # fewest out-of-sample trades for a win rate to mean anything


def gate(result: Evaluated, settings: GateThresholds, min_trades: int = MIN_TRADES) -> GateDecision:
    """Approve the model only when every check passes; say what failed and by how much."""
    m = result.model_metrics
    checks: list[tuple[bool, str]] = [
        (result.training_samples >= settings.min_training_samples,
         f"training samples {result.training_samples} (minimum {settings.min_training_samples})"),
        (m.accuracy >= settings.min_accuracy,
         f"out-of-sample accuracy {m.accuracy:.3f} (minimum {settings.min_accuracy:.3f})"),
        (m.win_rate is not None and m.win_rate >= settings.min_win_rate and m.trades >= min_trades,
         f"win rate {_pct(m.win_rate)} over {m.trades} trades "
         f"(minimum {settings.min_win_rate:.3f} over at least {min_trades} trades)"),
    ]
    if result.baseline_metrics:
        best_acc_name, best_acc = max(result.baseline_metrics.items(), key=lambda kv: kv[1].accuracy)
        best_sharpe_name, best_sharpe = max(result.baseline_metrics.items(), key=lambda kv: kv[1].sharpe)
        checks += [
            (m.accuracy > best_acc.accuracy,
             f"accuracy {m.accuracy:.3f} vs best baseline {best_acc_name} {best_acc.accuracy:.3f} (must be higher)"),
            (m.sharpe > best_sharpe.sharpe,
             f"Sharpe {m.sharpe:.2f} vs best baseline {best_sharpe_name} {best_sharpe.sharpe:.2f} (must be higher)"),
        ]
    failed = [f"failed: {text}" for ok, text in checks if not ok]
    return GateDecision(not failed, failed, [f"passed: {text}" for ok, text in checks if ok])


def _pct(value: float | None) -> str:
    return "n/a (no trades)" if value is None else f"{value:.3f}"
