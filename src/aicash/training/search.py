"""The model search: every trial is one configuration's walk-forward on the same purged folds; the winner is the
trial with the best out-of-sample Sharpe ratio after costs; then the winner alone is trained for deployment, next
to the baselines, with the search's evidence (trials, deflated Sharpe ratio, PBO) for the gate.

The pieces run apart on KFP (`run_trial` per task, `select_winner` and `train_winner` in one), or together here
(`run_search`). A trial's evidence is a `TrialOutcome`: its figures (`Metrics`) and its per-bar out-of-sample
returns after costs, which the deflated Sharpe ratio and the probability of backtest overfitting are computed from.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aicash.training.dataset import Samples
from aicash.training.experiment import evaluate_samples
from aicash.training.families import make_learner
from aicash.training.gating import GateThresholds
from aicash.training.metrics import Metrics, Predictions, evaluate, strategy_returns
from aicash.training.overfitting import search_evidence
from aicash.training.result import TrainingResult
from aicash.training.search_space import TrialSpec
from aicash.training.trainer import ProgressCallback
from aicash.training.walk_forward import walk_forward_folds

RETURNS_FILE = "returns.parquet"  # a trial folder's per-bar out-of-sample returns after costs (column "return")
TRIAL_FILE = "trial.json"  # a trial folder's record: spec, figures, seconds
SEARCH_REPORT_FILE = "search_report.html"  # in the winner's artifact folder, next to report.html: its search
RECORD_FIGURES = ("accuracy", "directional_accuracy", "win_rate", "trades", "coverage", "calibration_error", "sharpe",
                  "information_coefficient")


@dataclass(frozen=True)
class TrialOutcome:
    """What one trial gave: its spec, its pooled out-of-sample figures, its per-bar returns after costs (indexed by
    bar time) and how long its walk-forward took."""

    spec: TrialSpec
    metrics: Metrics
    returns: pd.Series
    seconds: float

    @property
    def number(self) -> int:
        return self.spec.number

    @property
    def period_sharpe(self) -> float:
        """Per-bar (not annualised) Sharpe ratio of the returns, as the deflated Sharpe ratio wants it; 0 when
        they are constant (a model that never trades)."""
        values = self.returns.to_numpy(dtype=float)
        std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        return float(values.mean() / std) if std > 0 else 0.0

    def record(self, selected: bool = False) -> dict[str, Any]:
        """The trial as the experiments store keeps it (one leaderboard row); None where a figure is undefined."""
        figures = self.metrics.to_dict()
        return {"number": self.number, "family": self.spec.family, "params": dict(self.spec.params),
                **{name: _finite(figures.get(name)) for name in RECORD_FIGURES},
                "seconds": round(self.seconds, 3), "selected": selected}

    def save(self, folder: Path | str) -> Path:
        """Write the trial's folder (returns and record), e.g. a KFP Dataset; returns the folder."""
        path = Path(folder)
        path.mkdir(parents=True, exist_ok=True)
        self.returns.rename("return").to_frame().to_parquet(path / RETURNS_FILE)
        record = {"spec": json.loads(self.spec.to_json()), "metrics": self.metrics.to_dict(), "seconds": self.seconds}
        (path / TRIAL_FILE).write_text(json.dumps(record, default=_json_default), encoding="utf-8")
        return path

    @classmethod
    def load(cls, folder: Path | str) -> TrialOutcome:
        path = Path(folder)
        record = json.loads((path / TRIAL_FILE).read_text(encoding="utf-8"))
        returns = pd.read_parquet(path / RETURNS_FILE)["return"]
        return cls(TrialSpec.from_json(json.dumps(record["spec"])), Metrics.from_dict(record["metrics"]), returns,
                   float(record["seconds"]))

    def summary(self) -> str:
        """One line for a log: `trial 3 gru: Sharpe 1.23, 412 trades (8.1 s)`."""
        return (f"trial {self.number} {self.spec.family}: Sharpe {self.metrics.sharpe:.2f}, "
                f"{self.metrics.trades} trades ({self.seconds:.1f} s)")


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def run_trial(samples: Samples, spec: TrialSpec, progress: ProgressCallback | None = None) -> TrialOutcome:
    """The walk-forward of one configuration on `samples`: a fresh model per fold, scored on the fold's test block
    (the folds are the ones `evaluate_samples` uses, so the winner's figures are reproduced by its final run)."""
    start = time.perf_counter()
    config = spec.config
    parts: list[Predictions] = []
    folds = walk_forward_folds(samples, config)
    for fold in folds:
        learner = make_learner(config, progress, stage=f"trial {spec.number} fold {fold.number}/{len(folds)}")
        learner.fit(samples, fold.fit, fold.validation)
        parts.append(Predictions.from_proba(learner.predict_proba(samples, fold.test), config.confidence_threshold))
    idx = np.concatenate([fold.test for fold in folds])
    predictions = Predictions.concat(parts)
    metrics = evaluate(predictions, samples, idx, config.cost_per_trade)
    returns = strategy_returns(samples, idx, predictions.signs, config.cost_per_trade)
    return TrialOutcome(spec, metrics, returns, time.perf_counter() - start)


def select_winner(outcomes: Sequence[TrialOutcome]) -> TrialOutcome:
    """The trial with the highest out-of-sample Sharpe ratio after costs (the lowest number among equals)."""
    if not outcomes:
        raise ValueError("no trial to select from: the search ran none")
    return max(sorted(outcomes, key=lambda o: o.number), key=lambda o: o.metrics.sharpe)


def search_block(outcomes: Sequence[TrialOutcome], winner: TrialOutcome) -> dict[str, Any]:
    """metrics.json's "search" block (without an experiment yet): the number of trials, the winner, and the
    deflated Sharpe ratio and PBO computed from every trial's per-bar returns on the same bars."""
    ordered = sorted(outcomes, key=lambda o: o.number)
    matrix = pd.concat([o.returns.rename(o.number) for o in ordered], axis=1).sort_index()
    return {
        "experiment_id": None, "selected_trial": winner.number, "family": winner.spec.family,
        "params": dict(winner.spec.params),
        **search_evidence(winner.returns.to_numpy(dtype=float), [o.period_sharpe for o in ordered],
                          matrix.to_numpy(dtype=float) if len(ordered) > 1 else None),
    }


def train_winner(samples: Samples, outcomes: Sequence[TrialOutcome], progress: ProgressCallback | None = None,
                 settings: GateThresholds | None = None) -> tuple[TrainingResult, TrialOutcome]:  # fmt: skip
    """The winner's walk-forward against the baselines and its deployable model, carrying the search's evidence
    (and, with `settings`, the gate's decision)."""
    winner = select_winner(outcomes)
    result = evaluate_samples(samples, winner.spec.config, progress, settings,
                              search=search_block(outcomes, winner))
    return result, winner


@dataclass(frozen=True)
class SearchResult:
    """A whole search run here: every trial, the winner and its trained result."""

    outcomes: list[TrialOutcome]
    winner: TrialOutcome
    result: TrainingResult

    def records(self) -> list[dict[str, Any]]:
        """Every trial as the experiments store keeps it, the winner marked."""
        return [o.record(selected=o.number == self.winner.number) for o in self.outcomes]


def run_search(samples: Samples, specs: Sequence[TrialSpec], progress: ProgressCallback | None = None,
               settings: GateThresholds | None = None) -> SearchResult:  # fmt: skip
    """Every trial, one after the other, then the winner trained with the evidence (what the pipeline does with
    its trials in parallel)."""
    outcomes = [run_trial(samples, spec, progress) for spec in specs]
    result, winner = train_winner(samples, outcomes, progress, settings)
    return SearchResult(outcomes, winner, result)

