"""The artifact folder's file names, written once, and the readers the pipelines, the drift job and the Bento use.

Free of torch, so a job that only reads figures or the reference sample does not pay for importing it.
`aicash.training.artifacts` documents each file's content and loads the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

MODEL_FILE = "model.pt"  # torch families (lstm, gru, tcn, linear): the whole model in TorchScript
GBM_FEATURES_FILE = "features.pt"  # lightgbm: TorchScript raw windows -> the booster's summary features
GBM_MODEL_FILE = "model.lgb.txt"  # lightgbm: the booster, LightGBM's text format
SCALER_FILE = "scaler.json"
FEATURES_FILE = "features.json"
METRICS_FILE = "metrics.json"
REFERENCE_FILE = "reference.parquet"
REPORT_FILE = "report.html"
COMMON_FILES = (SCALER_FILE, FEATURES_FILE, METRICS_FILE, REFERENCE_FILE, REPORT_FILE)
ARTIFACT_FILES = (MODEL_FILE, *COMMON_FILES)  # a torch family's folder (and every folder before lightgbm)


def model_files(family: str) -> tuple[str, ...]:
    """The files a family's model is served from (besides features.json)."""
    return (GBM_FEATURES_FILE, GBM_MODEL_FILE) if family == "lightgbm" else (MODEL_FILE,)


def family_files(family: str) -> tuple[str, ...]:
    """Every file of a family's artifact folder."""
    return (*model_files(family), *COMMON_FILES)


class MissingArtifactError(FileNotFoundError):
    """The artifact folder lacks a file the caller needs."""


def artifact_path(folder: Path | str, name: str) -> Path:
    """`folder/name`, or `MissingArtifactError` naming the file and the folder."""
    path = Path(folder) / name
    if not path.is_file():
        raise MissingArtifactError(f"{folder} has no {name} among its artifacts")
    return path


def read_metrics(folder: Path | str) -> dict[str, Any]:
    """metrics.json: walk-forward figures, baselines, folds, config, gate decision."""
    return json.loads(artifact_path(folder, METRICS_FILE).read_text())


def read_reference(folder: Path | str) -> pd.DataFrame:
    """reference.parquet: the sample of training indicators the drift report compares against."""
    return pd.read_parquet(artifact_path(folder, REFERENCE_FILE))


def report_path(folder: Path | str) -> Path:
    """report.html: the self-contained training report."""
    return artifact_path(folder, REPORT_FILE)
