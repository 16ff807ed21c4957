"""The Evidently report behind `aicash monitor drift`: per-column drift tests of the model's inputs and predicted
signal, read back into `aicash.monitoring.drift.DriftResult`.

This is the only module that imports Evidently, and only inside `run_drift` (it takes ~2.5 s to import).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pandas as pd

from aicash.indicators import INDICATOR_COLUMNS
from aicash.monitoring.drift import (
    DRIFT_SHARE,
    MAX_CURRENT_ROWS,
    SIGNAL,
    ColumnDrift,
    DriftInputError,
    DriftResult,
    mean_shifts,
    prepare_frames,
    reference_signal_distribution,
)


def _status(test: Mapping[str, Any]) -> str:
    status = test.get("status")
    return str(getattr(status, "value", status))


def _column_results(snapshot: dict[str, Any]) -> dict[str, ColumnDrift]:
    """Per-column score (metrics of type ValueDrift) joined with its test's status (only with include_tests)."""
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
) -> DriftResult:
    """Run the Evidently report on `reference` (INDICATOR_COLUMNS) and `current` (`window.load_predictions`: the
    whole window; Evidently gets a sample of `max_current_rows` when it holds more)."""
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
    shifts = mean_shifts(reference, current)
    own = current.loc[current["model_version"] == production_version, "signal"].value_counts()
    return DriftResult(
        features=[replace(columns[c], mean_shift=shifts[c]) for c in features],
        signal=columns.get(SIGNAL) if with_signal else None,
        drift_share=drift_share,
        current_rows=len(current),
        compared_rows=len(cur),
        reference_rows=len(ref),
        signal_reference=signal_source,
        current_signals={str(k): int(v) for k, v in own.items()},
        html=snapshot.get_html_str(as_iframe=False),
        snapshot_json=snapshot.json(),
    )
