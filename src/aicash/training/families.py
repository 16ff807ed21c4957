"""Model families behind one protocol: fit on training windows, predict on raw windows, export an artifact folder.

The torch families (lstm, gru, tcn, linear) share the `Trainer` and export one TorchScript `model.pt`;
lightgbm (`aicash.training.gbm`) exports a TorchScript window summary and a booster. Walk-forward, the final fit
and serving see only this protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from aicash.training import artifact_files as files
from aicash.training.config import TrainingConfig
from aicash.training.dataset import Samples
from aicash.training.network import TORCH_FAMILIES, SignalNetwork
from aicash.training.trainer import FitReport, ProgressCallback, Trainer, predict_proba


class Learner(Protocol):
    """One family's model: fitted per fold and for deployment, then saved for serving."""

    @property
    def family(self) -> str: ...

    @property
    def features(self) -> tuple[str, ...]:
        """Input feature names, in window column order (empty before fit)."""
        ...

    def fit(self, samples: Samples, fit_idx: np.ndarray, val_idx: np.ndarray) -> FitReport: ...

    def predict_proba(self, samples: Samples, idx: np.ndarray) -> np.ndarray:
        """(len(idx), 3) class probabilities of the given samples."""
        ...

    def predict_windows(self, windows: np.ndarray) -> np.ndarray:
        """(batch, 3) class probabilities of raw float32 windows (batch, window, features)."""
        ...

    def export(self, folder: Path) -> None:
        """Write the model files and scaler.json into `folder`."""
        ...


class TorchLearner:
    """A torch family through the shared `Trainer`; exported as TorchScript model.pt."""

    def __init__(self, config: TrainingConfig, progress: ProgressCallback | None = None, stage: str = "train") -> None:
        self.family: str = config.family
        self.config = config
        self.trainer = Trainer(config, progress, stage)

    @property
    def network(self) -> SignalNetwork:
        if self.trainer.network is None:
            raise RuntimeError("fit the learner first")
        return self.trainer.network

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(self.trainer.network.transform.features) if self.trainer.network is not None else ()

    def fit(self, samples: Samples, fit_idx: np.ndarray, val_idx: np.ndarray) -> FitReport:
        return self.trainer.fit(samples, fit_idx, val_idx)

    def predict_proba(self, samples: Samples, idx: np.ndarray) -> np.ndarray:
        return self.trainer.predict_proba(samples, idx)

    def predict_windows(self, windows: np.ndarray) -> np.ndarray:
        return predict_proba(self.network, np.asarray(windows, dtype=np.float32))

    def export(self, folder: Path) -> None:
        from aicash.training.artifacts import export_torchscript, write_json

        export_torchscript(self.network, Path(folder) / files.MODEL_FILE)
        write_json(Path(folder) / files.SCALER_FILE, self.network.transform.describe())


def make_learner(config: TrainingConfig, progress: ProgressCallback | None = None, stage: str = "train") -> Learner:
    """A fresh, unfitted learner of `config.family`; `stage` names it in progress events (e.g. "fold 2/5")."""
    if config.family in TORCH_FAMILIES:
        return TorchLearner(config, progress, stage)
    if config.family == "lightgbm":
        from aicash.training.gbm import GBMLearner

        return GBMLearner(config, progress, stage)
    raise ValueError(f"unknown model family {config.family!r}: use one of {[*TORCH_FAMILIES, 'lightgbm']}")
