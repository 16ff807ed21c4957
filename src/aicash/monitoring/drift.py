"""Drift between the production model's reference sample and recent logged predictions: what is compared, the
verdict and its figures. Evidently computes the per-column tests (`monitoring.drift_report`, outside this package).

What is compared:
- every model input feature (`INDICATOR_COLUMNS`): the reference sample saved with the model
  (`reference.parquet`) against the features of the predictions logged in the window, all model versions;
- the predicted signal: the production model's answers in the window against the class distribution the same
  model predicted out of sample in its walk-forward evaluation (column sums of `metrics.json`'s confusion
  matrix), or, when that is missing, the training labels' class balance.

Per column, Evidently picks the test by the reference size (measured with Evidently 0.7.23): normed Wasserstein
distance for numbers and Jensen-Shannon distance for the signal (drift when the score is at least 0.1) above 1,000
reference rows, K-S and chi-square p-values below. **Verdict**: drift is detected when at least `drift_share` of the
input features drift (default 0.25, i.e. 4 of 16), or when the predicted signal distribution drifts. One drifted
feature alone does not flag it: several of the 16 features move together with the price level, so the rule asks for
a broader change than one column; the signal rule catches a model whose answers shift even when its inputs barely do.

**Sample.** The whole window is read, and its figures (predictions, answers per signal, each feature's mean shift in
reference standard deviations) cover every row; Evidently compares at most `max_current_rows` (5,000, the size of
the training reference sample) of them, drawn uniformly at random (seeded). Evidently's time grows with the rows
(measured on 2 cores: about 1.8 s of CPU for 5,000 rows against a 5,000-row reference, 5.2 s for 100,000), while
its distance estimates barely change past as many current rows as reference rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from aicash.indicators import INDICATOR_COLUMNS
from aicash.signals.rule import SIGNALS

DRIFT_SHARE = 0.25
MAX_CURRENT_ROWS = 5_000  # the size of the training reference sample
SIGNAL = "signal"
SEED = 7


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift test: the method, its score and threshold, and Evidently's verdict."""

    column: str
    method: str
    score: float
    threshold: float
    drifted: bool
    mean_shift: float | None = None  # window mean - reference mean, in reference standard deviations (every row)

    def describe(self) -> str:
        shift = "" if self.mean_shift is None else f", mean shift {self.mean_shift:+.2f} sd"
        return f"{self.column}: {self.method} {self.score:.3g} (threshold {self.threshold:g}{shift})"


@dataclass
class DriftResult:
    """The verdict, the per-column tests and the rendered report."""

    features: list[ColumnDrift]
    signal: ColumnDrift | None
    drift_share: float
    current_rows: int  # predictions in the window, all read
    compared_rows: int  # rows given to Evidently (a sample when the window holds more than the cap)
    reference_rows: int
    signal_reference: str  # where the reference signal distribution came from
    current_signals: dict[str, int] = field(default_factory=dict)
    html: str = ""
    snapshot_json: str = ""

    @property
    def drifted_features(self) -> list[ColumnDrift]:
        return sorted((c for c in self.features if c.drifted), key=lambda c: -c.score)

    @property
    def drifted_share(self) -> float:
        return len(self.drifted_features) / len(self.features) if self.features else 0.0

    @property
    def signal_drifted(self) -> bool:
        return bool(self.signal and self.signal.drifted)

    @property
    def detected(self) -> bool:
        return self.drifted_share >= self.drift_share or self.signal_drifted

    def headline(self) -> str:
        count = len(self.drifted_features)
        what = f"{count} of {len(self.features)} features drifted"
        if self.signal is not None:
            what += ", predicted signal " + ("drifted" if self.signal_drifted else "stable")
        return ("drift detected: " if self.detected else "no drift: ") + what

    def summary(self) -> dict[str, Any]:
        """The JSON-ready verdict written beside the report and kept in `drift_reports.scores`."""
        return {
            "detected": self.detected,
            "rule": f"drifted features share >= {self.drift_share:g} or predicted signal drifted",
            "drifted_share": self.drifted_share,
            "drifted_features": [c.column for c in self.drifted_features],
            "features": [asdict(c) for c in self.features],
            "signal": None if self.signal is None else asdict(self.signal),
            "signal_reference": self.signal_reference,
            "current_signals": self.current_signals,
            "current_rows": self.current_rows,
            "compared_rows": self.compared_rows,
            "reference_rows": self.reference_rows,
        }


class DriftInputError(ValueError):
    """The reference or the current data cannot be compared (missing columns, empty)."""


def reference_signal_distribution(metrics: Mapping[str, Any]) -> tuple[dict[str, float] | None, str]:
    """Expected share of each signal: the model's out-of-sample predictions, else its training labels."""
    confusion = ((metrics.get("aggregate") or {}).get("model") or {}).get("confusion")
    if confusion and len(confusion) == len(SIGNALS):
        predicted = np.asarray(confusion, dtype=float).sum(axis=0)
        if predicted.sum() > 0:
            return dict(zip(SIGNALS, predicted / predicted.sum(), strict=True)), "walk-forward predictions"
    balance = (metrics.get("data") or {}).get("class_balance")
    if balance and all(name in balance for name in SIGNALS) and sum(balance.values()) > 0:
        total = float(sum(balance[name] for name in SIGNALS))
        return {name: float(balance[name]) / total for name in SIGNALS}, "training label balance"
    return None, "none in metrics.json: predicted signal not compared"


def _signal_column(shares: Mapping[str, float], rows: int) -> np.ndarray:
    """`rows` labels with the given shares (largest-remainder rounding), in a fixed shuffled order."""
    exact = np.array([shares[name] * rows for name in SIGNALS])
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact)[: rows - counts.sum()]] += 1
    labels = np.repeat(np.array(SIGNALS, dtype=object), counts)
    return np.random.default_rng(SEED).permutation(labels)


def prepare_frames(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    signal_shares: Mapping[str, float] | None,
    production_version: str,
    max_current_rows: int = MAX_CURRENT_ROWS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current frames of the features (and the signal, when there is a reference for it)."""
    features = list(INDICATOR_COLUMNS)
    missing = [c for c in features if c not in reference.columns]
    if missing:
        raise DriftInputError(f"the reference sample lacks {missing}: retrain the model to save a full reference")
    if reference.empty or current.empty:
        raise DriftInputError("nothing to compare: the reference sample or the current window is empty")
    ref = reference[features].astype("float64").reset_index(drop=True)
    cur = current
    if len(cur) > max_current_rows:
        cur = cur.sample(n=max_current_rows, random_state=SEED).sort_index()
    cur_out = cur[features].astype("float64").reset_index(drop=True)
    if signal_shares is not None:
        ref[SIGNAL] = _signal_column(signal_shares, len(ref))
        own = (cur["model_version"] == production_version).to_numpy()
        cur_out[SIGNAL] = np.where(own, cur["signal"].astype(object).to_numpy(), None)
    return ref, cur_out


def mean_shifts(reference: pd.DataFrame, current: pd.DataFrame) -> dict[str, float | None]:
    """Per feature: (window mean - reference mean) / reference standard deviation, over every row of both; None
    where the reference does not vary or the window has no value."""
    out: dict[str, float | None] = {}
    for column in INDICATOR_COLUMNS:
        ref = reference[column].astype("float64")
        sd, mean = float(ref.std()), float(current[column].astype("float64").mean())
        out[column] = (mean - float(ref.mean())) / sd if sd > 0 and math.isfinite(sd) and math.isfinite(mean) else None
    return out
