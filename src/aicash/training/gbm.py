"""Gradient-boosted trees (LightGBM) on features summarising the window, behind the same learner protocol.

The window is first made stationary and standardised by the fitted `IndicatorTransform` (as the networks' inputs
are), then each feature is summarised by its last value, window mean, window standard deviation and last minus
first. That summary is a TorchScript module saved as `features.pt` beside the booster (`model.lgb.txt`), so
serving derives exactly the features training did.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import torch
from torch import nn

from aicash.training import artifact_files as files
from aicash.training.config import TrainingConfig
from aicash.training.dataset import Samples
from aicash.training.network import N_CLASSES
from aicash.training.trainer import EpochProgress, FitReport, ProgressCallback, torch_runtime
from aicash.training.transform import IndicatorTransform

EARLY_STOPPING_ROUNDS = 20  # boosting rounds without a lower validation log loss before boosting stops
PROGRESS_EVERY = 25  # boosting rounds between progress reports
SUMMARIES = ("last", "mean", "std", "change")


class WindowFeatures(nn.Module):
    """(batch, window, features) raw indicators -> (batch, 4 x features): last, mean, std, last - first per feature."""

    def __init__(self, transform: IndicatorTransform) -> None:
        super().__init__()
        self.transform = transform

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        x = self.transform(raw)
        last = x[:, -1, :]
        std = torch.sqrt(torch.clamp((x - x.mean(dim=1, keepdim=True)).pow(2).mean(dim=1), min=0.0))
        return torch.cat([last, x.mean(dim=1), std, last - x[:, 0, :]], dim=1)


def feature_names(features: Sequence[str]) -> list[str]:
    """The booster's column names, in WindowFeatures' output order."""
    return [f"{feature}_{summary}" for summary in SUMMARIES for feature in features]


@torch.no_grad()
def summarise(module: nn.Module, windows: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """The summary features of raw windows (an array or chunks), float64 for LightGBM."""
    chunks = [windows] if isinstance(windows, np.ndarray) else list(windows)
    parts = [module(torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32))).double().numpy() for c in chunks]
    return np.concatenate(parts) if parts else np.zeros((0, 0))


class GBMModel:
    """A fitted window summary and booster: raw windows -> class probabilities (what is saved and served)."""

    def __init__(self, features_module: nn.Module, booster: lgb.Booster, threads: int = 1) -> None:
        self.features_module = features_module
        self.booster = booster
        self.threads = threads

    def predict_windows(self, windows: np.ndarray) -> np.ndarray:
        x = summarise(self.features_module, np.asarray(windows, dtype=np.float32))
        if len(x) == 0:
            return np.zeros((0, N_CLASSES))
        return np.asarray(self.booster.predict(x, num_threads=self.threads))

    def save(self, folder: Path) -> None:
        torch.jit.save(torch.jit.script(self.features_module.eval()), str(folder / files.GBM_FEATURES_FILE))
        self.booster.save_model(str(folder / files.GBM_MODEL_FILE))

    @classmethod
    def load(cls, folder: Path, threads: int = 1) -> GBMModel:
        module = torch.jit.load(str(folder / files.GBM_FEATURES_FILE), map_location="cpu").eval()
        return cls(module, lgb.Booster(model_file=str(folder / files.GBM_MODEL_FILE)), threads)


class GBMLearner:
    """Fits LightGBM multiclass trees, early-stopped on the later validation block; deterministic for a seed."""

    family = "lightgbm"

    def __init__(self, config: TrainingConfig, progress: ProgressCallback | None = None, stage: str = "train") -> None:
        self.config = config
        self.progress = progress
        self.stage = stage
        self.model: GBMModel | None = None
        self.features: tuple[str, ...] = ()

    def params(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "objective": "multiclass", "num_class": N_CLASSES, "metric": ["multi_logloss", "multi_error"],
            "num_leaves": cfg.num_leaves, "learning_rate": cfg.tree_learning_rate,
            "min_child_samples": cfg.min_child_samples, "feature_fraction": cfg.feature_fraction,
            "seed": cfg.seed, "num_threads": cfg.torch_threads, "deterministic": True, "force_row_wise": True,
            "verbosity": -1,
        }

    def fit(self, samples: Samples, fit_idx: np.ndarray, val_idx: np.ndarray) -> FitReport:
        """Fit the transform on the training windows, then boost until the validation log loss stops improving."""
        if len(fit_idx) == 0 or len(val_idx) == 0:
            raise ValueError(
                f"{self.stage}: {len(fit_idx)} training and {len(val_idx)} validation samples; "
                "need more bars (or fewer folds / a shorter window)"
            )
        start = time.perf_counter()
        with torch_runtime(self.config):
            transform = IndicatorTransform(samples.features).fit(samples.window_chunks(fit_idx))
            module = WindowFeatures(transform).eval()
            train_x, val_x = summarise(module, samples.window_chunks(fit_idx)), summarise(
                module, samples.window_chunks(val_idx))
        names = feature_names(samples.features)
        train = lgb.Dataset(train_x, samples.label[fit_idx], feature_name=names, free_raw_data=False)
        val = lgb.Dataset(val_x, samples.label[val_idx], reference=train, feature_name=names, free_raw_data=False)
        history: dict[str, dict[str, list[float]]] = {}
        progress = _BoostingProgress(self.stage, self.config.n_estimators, history, self.progress, start)
        booster = lgb.train(
            self.params(), train, num_boost_round=self.config.n_estimators, valid_sets=[train, val],
            valid_names=["train", "val"],
            callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, first_metric_only=True, verbose=False),
                       lgb.record_evaluation(history), progress],
        )
        losses = history["val"]["multi_logloss"]
        rounds = len(losses)
        best = booster.best_iteration or rounds
        progress.report(rounds, best)  # the last round, unless just reported
        self.model = GBMModel(module, _best_only(booster, best), self.config.torch_threads)
        self.features = tuple(samples.features)
        return FitReport(
            train_samples=len(fit_idx), validation_samples=len(val_idx), epochs=rounds, best_epoch=best,
            best_val_loss=float(losses[best - 1]), stopped_early=rounds < self.config.n_estimators,
            seconds=time.perf_counter() - start, samples_seen=len(fit_idx) * rounds,
        )

    def _fitted(self) -> GBMModel:
        if self.model is None:
            raise RuntimeError("fit the learner before predicting")
        return self.model

    def predict_proba(self, samples: Samples, idx: np.ndarray) -> np.ndarray:
        model = self._fitted()
        parts = [model.predict_windows(w) for w in samples.window_chunks(idx)]
        return np.concatenate(parts) if parts else np.zeros((0, N_CLASSES))

    def predict_windows(self, windows: np.ndarray) -> np.ndarray:
        return self._fitted().predict_windows(windows)

    def scaler(self) -> dict[str, object]:
        transform = self._fitted().features_module.transform
        assert isinstance(transform, IndicatorTransform)
        return {**transform.describe(), "applied": "inside features.pt: standardised = clip((stationary(raw) - mean) "
                "/ std, -clip, clip), then per feature: last, window mean, window std, last - first"}

    def export(self, folder: Path) -> None:
        from aicash.training.artifacts import write_json

        self._fitted().save(folder)
        write_json(folder / files.SCALER_FILE, self.scaler())


class _BoostingProgress:
    """A LightGBM callback sending an EpochProgress (a boosting round as the epoch) every PROGRESS_EVERY rounds."""

    def __init__(self, stage: str, max_rounds: int, history: dict[str, dict[str, list[float]]],
                 progress: ProgressCallback | None, start: float) -> None:
        self.stage, self.max_rounds, self.history, self.progress = stage, max_rounds, history, progress
        self.last_time, self.reported = start, 0
        self.order = 40  # after record_evaluation (20) has stored the round's scores (an instance attribute)

    def __call__(self, env: lgb.callback.CallbackEnv) -> None:
        round_ = env.iteration + 1
        if round_ % PROGRESS_EVERY == 0:
            losses = self.history["val"]["multi_logloss"]
            self.report(round_, int(np.argmin(losses)) + 1)

    def report(self, round_: int, best: int) -> None:
        if self.progress is None or round_ == self.reported:
            return
        now = time.perf_counter()
        val = self.history["val"]
        self.progress(EpochProgress(
            self.stage, round_, self.max_rounds, self.history["train"]["multi_logloss"][round_ - 1],
            val["multi_logloss"][round_ - 1], 1.0 - val["multi_error"][round_ - 1], best, now - self.last_time,
        ))
        self.last_time, self.reported = now, round_


def _best_only(booster: lgb.Booster, best: int) -> lgb.Booster:
    """The booster cut to its best iteration, so predicting, saving and loading all use the same trees."""
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
