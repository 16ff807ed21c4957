"""Training and honest evaluation of the signal model, free of KFP, Feast and BentoML.

`train_and_evaluate(frame, config)` builds labelled windows, runs a purged walk-forward evaluation of the
configured model family (`config.family`: lstm, gru, tcn, linear or lightgbm, each a `Learner` from
`make_learner`) and its baselines, trains the deployable model and returns a `TrainingResult`; `result.save(folder)`
writes the artifact folder that `load_model(folder)` serves; `gate(result, settings)` decides promotion.

Names are imported lazily: serving needs only `load_model` (torch), not scikit-learn or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "ArtifactError": "artifacts", "ServableModel": "artifacts", "load_model": "artifacts",
    "TrainingConfig": "config",
    "evaluate_samples": "experiment", "train_and_evaluate": "experiment",
    "EvaluationSummary": "gating", "GateDecision": "gating", "gate": "gating",
    "Learner": "families", "make_learner": "families",
    "TrainingResult": "result",
    "EpochProgress": "trainer", "console_progress": "trainer",
}
__all__ = [
    "ArtifactError", "EpochProgress", "EvaluationSummary", "GateDecision", "Learner", "ServableModel",
    "TrainingConfig", "TrainingResult", "console_progress", "evaluate_samples", "gate", "load_model",
    "make_learner", "train_and_evaluate",
]

if TYPE_CHECKING:
    from aicash.training.artifacts import ArtifactError, ServableModel, load_model
    from aicash.training.config import TrainingConfig
    from aicash.training.experiment import evaluate_samples, train_and_evaluate
    from aicash.training.families import Learner, make_learner
    from aicash.training.gating import EvaluationSummary, GateDecision, gate
    from aicash.training.result import TrainingResult
    from aicash.training.trainer import EpochProgress, console_progress


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'aicash.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"aicash.training.{_EXPORTS[name]}"), name)
