"""What a training run produced: the deployable model, its out-of-sample evidence, and how to save it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from aicash.indicators import INDICATOR_COLUMNS
from aicash.model_input import MODEL_NAME
from aicash.signals.rule import SIGNALS
from aicash.training import artifact_files as files
from aicash.training import artifacts
from aicash.training.config import TrainingConfig
from aicash.training.families import Learner, TorchLearner
from aicash.training.gating import GateDecision
from aicash.training.metrics import Metrics
from aicash.training.network import SignalNetwork
from aicash.training.trainer import FitReport
from aicash.training.walk_forward import MODEL_KEY, FoldResult


@dataclass
class TrainingResult:
    """The final model and the walk-forward figures that describe the procedure that trained it.

    The final model is trained exactly as each fold's model was (on all samples but the latest
    `validation_fraction`, which drives early stopping), so the walk-forward figures estimate this model.
    """

    config: TrainingConfig
    learner: Learner  # the final model, of `config.family`
    final_fit: FitReport
    folds: list[FoldResult]
    aggregate: dict[str, Metrics]  # predictor name -> figures over every test block pooled; MODEL_KEY first
    equity: pd.DataFrame  # cumulative strategy log return after costs per predictor (and buy_and_hold), by time
    reliability: dict[str, pd.DataFrame]  # predictor name -> calibration table
    reference: pd.DataFrame  # training indicators (INDICATOR_COLUMNS) for drift monitoring
    data: dict[str, Any]  # what was trained on: series, time span, samples, class balance
    timings: dict[str, float]
    decision: GateDecision | None = field(default=None)
    search: dict[str, Any] | None = field(default=None)  # metrics.json's "search" block: trials, DSR, PBO

    @property
    def family(self) -> str:
        return self.config.family

    @property
    def network(self) -> SignalNetwork:
        """The final torch network (torch families only)."""
        if not isinstance(self.learner, TorchLearner):
            raise TypeError(f"a {self.family} model has no torch network: use `learner`")
        return self.learner.network

    @property
    def training_samples(self) -> int:
        """Samples the final model was fitted on (its early-stopping block excluded)."""
        return self.final_fit.train_samples

    @property
    def model_metrics(self) -> Metrics:
        return self.aggregate[MODEL_KEY]

    @property
    def confusion(self) -> list[list[int]]:
        """The model's pooled out-of-sample confusion matrix (rows: true SELL/HOLD/BUY, columns: predicted)."""
        return self.model_metrics.confusion

    @property
    def baseline_metrics(self) -> dict[str, Metrics]:
        return {name: m for name, m in self.aggregate.items() if name != MODEL_KEY}

    def predict_proba(self, windows: np.ndarray) -> np.ndarray:
        """Class probabilities of raw windows (batch, window, features) from the final model."""
        return self.learner.predict_windows(np.asarray(windows, dtype=np.float32))

    def metrics_dict(self) -> dict[str, Any]:
        """Everything metrics.json holds (JSON-ready apart from non-finite floats, which `save` nulls)."""
        return {
            "model_name": MODEL_NAME,
            "classes": list(SIGNALS),
            "family": self.family,
            "features": list(self.learner.features),
            "window_bars": self.config.window_bars,
            "training_samples": self.training_samples,
            "aggregate": {
                "model": self.model_metrics.to_dict(),
                "baselines": {name: m.to_dict() for name, m in self.baseline_metrics.items()},
            },
            "folds": [
                {
                    "number": f.number, "train_start": f.train_start, "train_end": f.train_end,
                    "test_start": f.test_start, "test_end": f.test_end, "train_samples": f.train_samples,
                    "test_samples": f.test_samples, "fit": asdict(f.fit),
                    "metrics": {name: m.to_dict() for name, m in f.metrics.items()},
                }
                for f in self.folds
            ],
            "final_fit": asdict(self.final_fit),
            "config": self.config.model_dump(),
            "data": self.data,
            "timings": self.timings,
            "gate": None if self.decision is None else self.decision.to_dict(),
            "search": self.search,
        }

    def save(self, directory: Path | str, decision: GateDecision | None = None) -> dict[str, Path]:
        """Write the artifact folder (see `aicash.training.artifacts`); returns file name -> path."""
        from aicash.training.report import render_report  # matplotlib only when writing

        if decision is not None:
            self.decision = decision
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {name: folder / name for name in files.family_files(self.family)}
        self.learner.export(folder)  # the model files and scaler.json
        artifacts.write_json(paths[files.FEATURES_FILE],
                             artifacts.features_spec(self.learner.features, self.config.window_bars, self.family))
        artifacts.write_json(paths[files.METRICS_FILE], self.metrics_dict())
        self.reference[list(INDICATOR_COLUMNS)].to_parquet(paths[files.REFERENCE_FILE], index=False)
        paths[files.REPORT_FILE].write_text(render_report(self), encoding="utf-8")
        return paths
