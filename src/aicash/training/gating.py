"""The promotion gate: a trained model becomes a registry candidate only if its out-of-sample figures pass.

Checks, each with the numbers in its reason:
1. the deployable model was trained on at least `min_training_samples` samples;
2. the directional accuracy of its traded signals (the share of BUY/SELL signals acted on whose direction the
   horizon return took, before costs) >= `min_accuracy`: the measure for which 0.55 means what MIN_ACCURACY says
   (three-class accuracy mixes in the HOLD class, which the model is not asked to trade);
3. win rate of traded signals >= `min_win_rate` over at least `min_trades` trades (a win rate over a handful
   of trades is noise; a model that never trades fails);
4. it beats every baseline other than its own kind (the `linear` family is the `logistic` baseline): directional
   accuracy of traded signals above the best baseline's (a baseline that never trades has none and is beaten),
   and Sharpe ratio after costs above the best baseline Sharpe;
5. the search that found it did not make it look good by luck: deflated Sharpe ratio >= MIN_DEFLATED_SHARPE over
   the number of trials (one for a single-configuration run), and, with two or more trials, probability of
   backtest overfitting <= `max_pbo`. A result without search evidence fails.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aicash.training.metrics import Metrics

MIN_DEFLATED_SHARPE = 0.95  # Bailey & López de Prado's 95 % confidence that the Sharpe ratio beats luck
# The baseline a model family is a version of: a winner is not compared with itself.
FAMILY_BASELINE: dict[str, str] = {"linear": "logistic"}
DEFAULT_FAMILY = "lstm"  # what a metrics.json without a family was trained with


class GateThresholds(Protocol):
    """The gate's settings (`aicash.settings.Settings` has them)."""

    min_training_samples: int
    min_accuracy: float
    min_win_rate: float
    max_pbo: float


class Evaluated(Protocol):
    """What the gate reads from a training result."""

    @property
    def training_samples(self) -> int: ...

    @property
    def model_metrics(self) -> Metrics: ...

    @property
    def baseline_metrics(self) -> Mapping[str, Metrics]: ...

    @property
    def family(self) -> str: ...

    @property
    def search(self) -> Mapping[str, Any] | None: ...


@dataclass(frozen=True)
class EvaluationSummary:
    """The gate's input without a trained model (hand-made in tests, or read back from metrics.json)."""

    training_samples: int
    model_metrics: Metrics
    baseline_metrics: Mapping[str, Metrics]
    family: str = DEFAULT_FAMILY
    search: Mapping[str, Any] | None = None  # metrics.json's `search` block: trials, deflated_sharpe, pbo

    @classmethod
    def from_metrics_json(cls, data: Mapping[str, Any]) -> EvaluationSummary:
        search = data.get("search")
        config = data.get("config")
        family = ((search or {}).get("family") or (config if isinstance(config, Mapping) else {}).get("family")
                  or DEFAULT_FAMILY)
        return cls(
            int(data["training_samples"]),
            Metrics.from_dict(data["aggregate"]["model"]),
            {name: Metrics.from_dict(m) for name, m in data["aggregate"]["baselines"].items()},
            str(family),
            search if isinstance(search, Mapping) else None,
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
        (m.directional_accuracy is not None and m.directional_accuracy >= settings.min_accuracy,
         f"out-of-sample directional accuracy of traded signals {_pct(m.directional_accuracy)} "
         f"(minimum {settings.min_accuracy:.3f})"),
        (m.win_rate is not None and m.win_rate >= settings.min_win_rate and m.trades >= min_trades,
         f"win rate {_pct(m.win_rate)} over {m.trades} trades "
         f"(minimum {settings.min_win_rate:.3f} over at least {min_trades} trades)"),
    ]
    checks += _baseline_checks(m, _other_baselines(result.family, result.baseline_metrics))
    checks += _search_checks(result.search, settings.max_pbo)
    failed = [f"failed: {text}" for ok, text in checks if not ok]
    return GateDecision(not failed, failed, [f"passed: {text}" for ok, text in checks if ok])


def _other_baselines(family: str, baselines: Mapping[str, Metrics]) -> dict[str, Metrics]:
    """The baselines a model of `family` is compared with: all but its own kind."""
    own = FAMILY_BASELINE.get(family)
    return {name: b for name, b in baselines.items() if name != own}


def _baseline_checks(m: Metrics, baselines: Mapping[str, Metrics]) -> list[tuple[bool, str]]:
    if not baselines:
        return []
    trading = {name: b.directional_accuracy for name, b in baselines.items() if b.directional_accuracy is not None}
    if trading:
        name, best = max(trading.items(), key=lambda kv: kv[1])
        direction = (m.directional_accuracy is not None and m.directional_accuracy > best,
                     f"directional accuracy of traded signals {_pct(m.directional_accuracy)} vs best baseline "
                     f"{name} {best:.3f} (must be higher)")
    else:
        direction = (m.directional_accuracy is not None,
                     f"directional accuracy of traded signals {_pct(m.directional_accuracy)} vs baselines: none "
                     "of them trades")
    sharpe_name, best_sharpe = max(baselines.items(), key=lambda kv: kv[1].sharpe)
    return [direction, (m.sharpe > best_sharpe.sharpe, f"Sharpe {m.sharpe:.2f} vs best baseline {sharpe_name} "
                                                       f"{best_sharpe.sharpe:.2f} (must be higher)")]


def _search_checks(search: Mapping[str, Any] | None, max_pbo: float) -> list[tuple[bool, str]]:
    """The deflated Sharpe ratio (always) and the probability of backtest overfitting (with two or more trials)."""
    dsr = search.get("deflated_sharpe") if search else None
    if not isinstance(dsr, Mapping) or not isinstance(dsr.get("probability"), int | float):
        return [(False, f"deflated Sharpe ratio (minimum {MIN_DEFLATED_SHARPE:.2f}): no search evidence")]
    trials = dsr.get("n_trials", search.get("trials") if search else None)
    text = (f"deflated Sharpe ratio {dsr['probability']:.3f} (minimum {MIN_DEFLATED_SHARPE:.2f}): Sharpe "
            f"{_num(dsr.get('sharpe'))} per period vs SR0 {_num(dsr.get('expected_max_sharpe'))}, the best of "
            f"{trials} trial{'' if trials == 1 else 's'} expected by luck")
    if dsr.get("note"):
        text += f" ({dsr['note']})"
    checks = [(dsr["probability"] >= MIN_DEFLATED_SHARPE, text)]
    pbo = search.get("pbo") if search else None
    if isinstance(pbo, Mapping) and isinstance(pbo.get("probability"), int | float):
        checks.append((pbo["probability"] <= max_pbo,
                       f"probability of backtest overfitting {pbo['probability']:.3f} (maximum {max_pbo:.2f}) over "
                       f"{pbo.get('splits')} splits of {pbo.get('n_trials')} trials"))
    return checks


def _num(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "n/a"


def _pct(value: float | None) -> str:
    return "n/a (no trades)" if value is None else f"{value:.3f}"
