"""The model artifact folder: what training writes and what serving loads (file names in `artifact_files`).

| file | content |
| --- | --- |
| model.pt | torch families: TorchScript float32 (batch, window, features) RAW indicator values -> (batch, 3)
  probabilities. The stationary transform and the scaler are inside, so serving cannot disagree with training. |
| features.pt, model.lgb.txt | lightgbm: TorchScript raw windows -> summary features (transform and scaler inside),
  and the booster in LightGBM's text format |
| scaler.json | the same transform and scaler numbers, for people and the drift report (not needed to serve) |
| features.json | model family, feature names in input order, window length, class order, the input/output contract |
| metrics.json | walk-forward figures, baselines, folds, config, gate decision |
| reference.parquet | a sample of training indicators (INDICATOR_COLUMNS) for drift monitoring |
| report.html | the self-contained training report |
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aicash.model_input import MODEL_FEATURES
from aicash.signals.rule import SIGNALS
from aicash.training.artifact_files import FEATURES_FILE, MODEL_FILE, model_files
from aicash.training.last_step import RECURRENT, LastStepModel, LastStepUnavailable, last_step_model
from aicash.training.network import SignalNetwork, SignalProbabilities

LEGACY_FAMILY = "lstm"  # what a features.json without "family" (written before the model zoo) holds
RUNTIMES = ("torchscript", "onnxruntime")

log = logging.getLogger(__name__)


def export_torchscript(network: SignalNetwork, path: Path) -> None:
    """Script the probability model (transform + scaler + classifier + softmax) and save it."""
    network.eval()
    scripted = torch.jit.script(SignalProbabilities(network).eval())
    torch.jit.save(scripted, str(path))


def features_spec(features: Sequence[str], window_bars: int, family: str) -> dict[str, Any]:
    return {
        "family": family,
        "features": list(features),
        "window_bars": window_bars,
        "classes": list(SIGNALS),
        "input": "float32 (batch, window_bars, len(features)) raw indicator values, oldest bar first",
        "output": "float32 (batch, 3) class probabilities in `classes` order",
    }


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(_json_safe(data), indent=2, allow_nan=False) + "\n")


def _json_safe(value: Any) -> Any:
    """Non-finite floats become null (JSON has no NaN); numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


class ArtifactError(ValueError):
    """The artifact folder is incomplete or does not match what this code serves."""


@dataclass
class ServableModel:
    """A loaded model of any family with its contract; `predict_proba` is what the inference runtime calls."""

    predict_windows: Callable[[np.ndarray], np.ndarray]  # checked float32 windows -> (batch, 3) probabilities
    features: tuple[str, ...]
    window_bars: int
    classes: tuple[str, ...]
    family: str = LEGACY_FAMILY
    runtime: str = "torchscript"  # what serves: "onnxruntime" or "torchscript" (LightGBM's own path says the latter)
    last_step: bool = False  # windows with a seen prefix are answered by the last step (`aicash.training.last_step`)

    def predict_proba(self, windows: np.ndarray) -> np.ndarray:
        """(batch, window_bars, features) raw indicators -> (batch, 3) float probabilities."""
        x = np.asarray(windows, dtype=np.float32)
        if x.ndim != 3 or x.shape[1:] != (self.window_bars, len(self.features)):
            raise ValueError(
                f"windows must have shape (batch, {self.window_bars}, {len(self.features)}), got {tuple(x.shape)}"
            )
        return self.predict_windows(np.ascontiguousarray(x))


class TorchScriptModel:
    """model.pt: raw windows -> probabilities in one TorchScript call."""

    def __init__(self, module: torch.jit.ScriptModule) -> None:
        self.module = module

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.module(torch.from_numpy(windows)).numpy()


def load_model(directory: Path | str, runtime: str = "torchscript", last_step: bool = False) -> ServableModel:
    """Load a model of any family and check its features.json against the features this code sends.

    A features.json without "family" was written by an LSTM (before the model zoo) and loads as one.
    `runtime="onnxruntime"` serves a torch family's model.pt through ONNX Runtime, exported in memory here and
    checked against TorchScript (`aicash.training.onnx_runtime`); when it cannot, a warning says why and
    TorchScript serves. LightGBM ignores `runtime` (its `ServableModel.runtime` is "torchscript": the window
    summary is TorchScript, the booster LightGBM).
    `last_step=True` (serving) answers an LSTM's or GRU's window whose earlier bars it has seen before by the last
    step from their kept state (`aicash.training.last_step`), once checked against the full model; when it cannot,
    a warning says why and the full model serves every window.
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: use one of {list(RUNTIMES)}")
    folder = Path(directory)
    spec = json.loads((folder / FEATURES_FILE).read_text()) if (folder / FEATURES_FILE).is_file() else {}
    family = str(spec.get("family", LEGACY_FAMILY))
    missing = [name for name in (*model_files(family), FEATURES_FILE) if not (folder / name).is_file()]
    if missing:
        raise ArtifactError(f"{folder} lacks {missing}: not a training artifact folder")
    if tuple(spec["features"]) != MODEL_FEATURES:
        raise ArtifactError(
            f"the model was trained on features {spec['features']}, this code sends {list(MODEL_FEATURES)}: "
            "retrain the model or serve it with the matching code version"
        )
    if tuple(spec["classes"]) != SIGNALS:
        raise ArtifactError(f"the model's classes {spec['classes']} differ from {list(SIGNALS)}")
    features, window_bars = tuple(spec["features"]), int(spec["window_bars"])
    predict: Callable[[np.ndarray], np.ndarray]
    served = "torchscript"
    if family == "lightgbm":
        from aicash.training.gbm import GBMModel  # LightGBM only for the family that needs it

        predict = GBMModel.load(folder).predict_windows
    else:
        module = torch.jit.load(str(folder / MODEL_FILE), map_location="cpu")
        module.eval()
        predict = TorchScriptModel(module)
        if runtime == "onnxruntime":
            from aicash.training.onnx_runtime import OnnxUnavailable, onnx_model

            try:
                predict, served = onnx_model(module, features, window_bars, reference=predict), "onnxruntime"
            except OnnxUnavailable as exc:
                log.warning("%s serves TorchScript, not ONNX Runtime: %s", folder, exc)
        if last_step and family in RECURRENT:
            try:
                predict = last_step_model(module, features, window_bars, full=predict)
            except LastStepUnavailable as exc:
                log.warning("%s runs the full window for every request: %s", folder, exc)
    return ServableModel(predict, features, window_bars, tuple(spec["classes"]), family, served,
                         last_step=isinstance(predict, LastStepModel))
