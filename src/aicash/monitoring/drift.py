"""The Evidently drift report: the production model's reference sample against recent logged predictions.

This is the only module that imports Evidently, and only inside functions (it takes ~2.5 s to import).

What is compared:
- every model input feature (`INDICATOR_COLUMNS`): the reference sample saved with the model
  (`reference.parquet`) against the features of the predictions logged in the window, all model versions;
- the predicted signal: the production model's answers in the window against the class distribution the same
  model predicted out of sample in its walk-forward evaluation (column sums of `metrics.json`'s confusion
  matrix), or, when that is missing, the training labels' class balance.

Per column, Evidently picks the test by the reference size (FACTS.md): normed Wasserstein distance for numbers
and Jensen-Shannon distance for the signal (drift when the score is at least 0.1) above 1,000 reference rows,
K-S and chi-square p-values below. **Verdict**: drift is detected when at least `drift_share` of the input features
drift (default 0.25, i.e. 4 of 16), or when the predicted signal distribution drifts. One drifted feature alone
does not flag it: several of the 16 features move together with the price level, so the rule asks for a broader
change than one column; the signal rule catches a model whose answers shift even when its inputs barely do.
The current data is capped at `max_current_rows` (5,000, the size of the training reference sample) rows, drawn
uniformly at random (seeded) when the window holds more: Evidently's time grows with the rows (about 0.2 s of CPU
per 1,000 here), and so does reading each logged row's feature JSON, while the distance estimates barely change
(with as many current rows as reference rows, more current rows no longer reduce their noise much).
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

    def describe(self) -> str:
        return f"{self.column}: {self.method} {self.score:.3g} (threshold {self.threshold:g})"


@dataclass
class DriftResult:
    """The verdict, the per-column tests and the rendered report."""

    features: list[ColumnDrift]
    signal: ColumnDrift | None
    drift_share: float
    current_rows: int  # predictions in the window
    compared_rows: int  # rows given to Evidently (sampled when more than the cap)
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


def _status(test: Mapping[str, Any]) -> str:
    status = test.get("status")
    return str(getattr(status, "value", status))


def _column_results(snapshot: dict[str, Any]) -> dict[str, ColumnDrift]:
    """Per-column score (metrics of type ValueDrift) joined with its test's status (FACTS: needs include_tests)."""
    failed = {}
    for test in snapshot["tests"]:
        params = (test.get("metric_config") or {}).get("params") or {}
        if params.get("type", "").endswith("ValueDrift") and params.get("column"):
            failed[params["column"]] = _status(test) == "FAIL"
    out = {}
    for metric in snapshot["metrics"]:
        config = metric.get("config") or {}
        if not config.get("type", "").endswith("ValueDrift"):
            continue
        column = config["column"]
        score = float(metric["value"])
        out[column] = ColumnDrift(column, str(config.get("method")), score if math.isfinite(score) else float("nan"),
                                  float(config.get("threshold") or float("nan")), failed.get(column, False))
    return out


def run_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    production_version: str,
    metrics: Mapping[str, Any],
    drift_share: float = DRIFT_SHARE,
    max_current_rows: int = MAX_CURRENT_ROWS,
    metadata: Mapping[str, str] | None = None,
    window_rows: int | None = None,
    window_signals: Mapping[tuple[str, str], int] | None = None,
) -> DriftResult:
    """Run the Evidently report on `reference` (INDICATOR_COLUMNS) and `current` (`window.load_predictions`).

    When `current` is already a sample of the window, `window_rows` and `window_signals` ((version, signal) ->
    count) give the whole window's figures for the summary."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    if not 0.0 < drift_share <= 1.0:
        raise DriftInputError(f"--drift-share {drift_share} must be in (0, 1], e.g. 0.25 for a quarter of the features")
    shares, signal_source = reference_signal_distribution(metrics)
    ref, cur = prepare_frames(reference, current, shares, production_version, max_current_rows)
    features = list(INDICATOR_COLUMNS)
    with_signal = SIGNAL in ref.columns and cur[SIGNAL].notna().any()
    if not with_signal:
        ref, cur = ref[features], cur[features]
        if shares is not None:
            signal_source = f"production {production_version} answered nothing in the window: signal not compared"
    definition = DataDefinition(numerical_columns=features, categorical_columns=[SIGNAL] if with_signal else [])
    checks: list[Any] = [DataDriftPreset(columns=features, drift_share=drift_share)]
    if with_signal:
        checks.append(ValueDrift(column=SIGNAL))
    report = Report(checks, include_tests=True, metadata=dict(metadata or {}))
    snapshot = report.run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    columns = _column_results(snapshot.dict())
    if window_signals is None:
        own = current.loc[current["model_version"] == production_version, "signal"].value_counts()
        window_signals = {(production_version, str(k)): int(v) for k, v in own.items()}
    return DriftResult(
        features=[columns[c] for c in features],
        signal=columns.get(SIGNAL) if with_signal else None,
        drift_share=drift_share,
        current_rows=window_rows if window_rows is not None else len(current),
        compared_rows=len(cur),
        reference_rows=len(ref),
        signal_reference=signal_source,
        current_signals={s: n for (v, s), n in window_signals.items() if v == production_version},
        html=snapshot.get_html_str(as_iframe=False),
        snapshot_json=snapshot.json(),
    )
