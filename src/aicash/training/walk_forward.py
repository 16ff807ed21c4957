"""Walk-forward evaluation: test blocks in time order, each scored by models trained only on earlier data.

Purging: a training sample's label looks `horizon` bars ahead, so a sample is used for training only when the
bar its label reads lies strictly before the test block's first bar (for one series that is a gap of `horizon`
bars). The network's early-stopping validation block is the latest part of each training period, purged the
same way, so the test block is never seen before it is scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from aicash.training.baselines import baselines
from aicash.training.config import TrainingConfig
from aicash.training.dataset import Samples
from aicash.training.families import make_learner
from aicash.training.metrics import Metrics, Predictions, evaluate
from aicash.training.trainer import FitReport, ProgressCallback

MODEL_KEY = "model"  # the trained model's name among the predictors (equity columns, predictions), any family


@dataclass(frozen=True)
class Fold:
    """Sample indices of one walk-forward step (each sorted in time)."""

    number: int  # 1-based
    train: np.ndarray  # everything the fold may learn from (fit + validation)
    fit: np.ndarray  # the model's training samples
    validation: np.ndarray  # the model's early-stopping samples (after `fit`, purged)
    test: np.ndarray


@dataclass(frozen=True)
class FoldResult:
    number: int
    train_start: str
    train_end: str
    test_start: str
    test_end: str
    train_samples: int
    test_samples: int
    fit: FitReport
    metrics: dict[str, Metrics] = field(default_factory=dict)  # predictor name -> figures on the test block


@dataclass(frozen=True)
class OutOfSample:
    """Every test block's predictions, concatenated in time order."""

    idx: np.ndarray
    predictions: dict[str, Predictions]


def purged_before(samples: Samples, candidates: np.ndarray, boundary: np.datetime64) -> np.ndarray:
    """The candidates whose label is fully known before `boundary`."""
    return candidates[samples.label_end_ts[candidates] < boundary]


def split_validation(samples: Samples, train: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """(fit, validation): validation is the latest `fraction` of the training time stamps; fit is purged before it."""
    stamps = np.unique(samples.ts[train])
    if len(stamps) < 2:
        return train[:0], train
    start = stamps[min(int(len(stamps) * (1.0 - fraction)), len(stamps) - 1)]
    return purged_before(samples, train, start), train[samples.ts[train] >= start]


def walk_forward_folds(samples: Samples, config: TrainingConfig) -> list[Fold]:
    """`n_folds` consecutive test blocks after the first `first_test_fraction` of time; expanding (or rolling) train."""
    stamps = np.unique(samples.ts)
    first = int(len(stamps) * config.first_test_fraction)
    if len(stamps) - first < config.n_folds:
        raise ValueError(f"{len(stamps)} time stamps cannot make {config.n_folds} test blocks: lower n_folds")
    everything = np.arange(len(samples))
    folds = []
    for number, block in enumerate(np.array_split(np.arange(first, len(stamps)), config.n_folds), start=1):
        start, last = stamps[block[0]], stamps[block[-1]]
        test = everything[(samples.ts >= start) & (samples.ts <= last)]
        train = purged_before(samples, everything, start)
        if config.max_train_samples is not None:
            train = train[-config.max_train_samples :]
        fit, validation = split_validation(samples, train, config.validation_fraction)
        folds.append(Fold(number, train, fit, validation, test))
    return folds


def final_split(samples: Samples, config: TrainingConfig) -> Fold:
    """The deployable model's data: all samples (rolling if configured), the latest block for early stopping."""
    train = np.arange(len(samples))
    if config.max_train_samples is not None:
        train = train[-config.max_train_samples :]
    fit, validation = split_validation(samples, train, config.validation_fraction)
    return Fold(0, train, fit, validation, train[:0])


def run_walk_forward(
    samples: Samples, config: TrainingConfig, progress: ProgressCallback | None = None
) -> tuple[list[FoldResult], OutOfSample]:
    """Train and score the model (of `config.family`) and the baselines on every fold."""
    folds = walk_forward_folds(samples, config)
    results: list[FoldResult] = []
    parts: dict[str, list[Predictions]] = {}
    for fold in folds:
        learner = make_learner(config, progress, stage=f"fold {fold.number}/{len(folds)}")
        report = learner.fit(samples, fold.fit, fold.validation)
        predictions = {MODEL_KEY: Predictions.from_proba(learner.predict_proba(samples, fold.test),
                                                         config.confidence_threshold)}
        for baseline in baselines(config.confidence_threshold, config.seed):
            baseline.fit(samples, fold.train)
            predictions[baseline.name] = baseline.predict(samples, fold.test)
        for name, pred in predictions.items():
            parts.setdefault(name, []).append(pred)
        results.append(
            FoldResult(
                number=fold.number,
                train_start=_iso(samples.ts[fold.train[0]]), train_end=_iso(samples.ts[fold.train[-1]]),
                test_start=_iso(samples.ts[fold.test[0]]), test_end=_iso(samples.ts[fold.test[-1]]),
                train_samples=len(fold.train), test_samples=len(fold.test), fit=report,
                metrics={name: evaluate(pred, samples, fold.test, config.cost_per_trade)
                         for name, pred in predictions.items()},
            )
        )
    oos_idx = np.concatenate([fold.test for fold in folds])
    return results, OutOfSample(oos_idx, {name: Predictions.concat(p) for name, p in parts.items()})


def _iso(stamp: np.datetime64) -> str:
    return pd.Timestamp(stamp).tz_localize("UTC").isoformat()
