"""The Evidently report behind `aicash monitor drift`: per-column drift tests of the model's inputs and predicted
signal, read back into `aicash.monitoring.drift.DriftResult`.

This is the only module that imports Evidently, and only inside `run_drift` (it takes ~2.5 s to import).
`brief_report_html` renders the reduced report that the drift mail attaches when Evidently's (its JavaScript
inline, ~4.8 MB) is over the mail's budget: plain HTML and inline SVG, tens of kilobytes, no script.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
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
from aicash.signals.rule import SIGNALS

HISTOGRAM_BINS = 20
_REFERENCE_COLOUR, _CURRENT_COLOUR, _DRIFT_COLOUR = "#9e9e9e", "#1565c0", "#b00020"


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


# -- the reduced report ---------------------------------------------------------------------------------------------
def _shares(values: pd.Series, edges: np.ndarray) -> np.ndarray:
    """Each bin's share of the finite values (the outermost bins take what lies beyond the edges)."""
    finite = values.to_numpy(dtype="float64")
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return np.zeros(len(edges) - 1)
    counts, _ = np.histogram(np.clip(finite, edges[0], edges[-1]), bins=edges)
    return counts / finite.size


def _bars_svg(groups: list[tuple[str, float, float]], current_colour: str, *, width: int = 360,
              named: bool = False) -> str:
    """Side-by-side bars (reference grey, current coloured) for each (label, reference share, current share)."""
    height, top = 70, max([0.0, *(max(r, c) for _, r, c in groups)]) or 1.0
    step = width / max(len(groups), 1)
    bar = max(step / 2 - 1, 1.0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 14}" role="img">']
    for i, (label, ref, cur) in enumerate(groups):
        for offset, share, colour in ((0.0, ref, _REFERENCE_COLOUR), (bar, cur, current_colour)):
            h = height * share / top
            parts.append(f'<rect x="{i * step + offset:.1f}" y="{height - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{colour}"><title>{html.escape(label)}: {share:.1%}</title></rect>')
        if named:  # class bars get their names; a histogram gets its range below it
            parts.append(f'<text x="{i * step + bar:.1f}" y="{height + 12}" font-size="10" '
                         f'text-anchor="middle">{html.escape(label)}</text>')
    return "".join([*parts, "</svg>"])


def _feature_section(column: ColumnDrift, reference: pd.Series, current: pd.Series) -> str:
    both = pd.concat([reference, current]).to_numpy(dtype="float64")
    both = both[np.isfinite(both)]
    low, high = (float(np.quantile(both, 0.005)), float(np.quantile(both, 0.995))) if both.size else (0.0, 1.0)
    edges = np.linspace(low, high if high > low else low + 1.0, HISTOGRAM_BINS + 1)
    ref, cur = _shares(reference, edges), _shares(current, edges)
    groups = [(f"{edges[i]:.4g} to {edges[i + 1]:.4g}", float(ref[i]), float(cur[i])) for i in range(len(ref))]
    colour = _DRIFT_COLOUR if column.drifted else _CURRENT_COLOUR
    shift = "-" if column.mean_shift is None else f"{column.mean_shift:+.2f} sd"
    return (f'<div class="col{" drifted" if column.drifted else ""}"><h3>{html.escape(column.column)}: '
            f'{"drifted" if column.drifted else "stable"}</h3><p>{html.escape(column.method)} {column.score:.3f} '
            f"(threshold {column.threshold:g}); mean shift {shift}</p>{_bars_svg(groups, colour)}"
            f'<p class="range">{edges[0]:.4g} &#8230; {edges[-1]:.4g}</p></div>')


def _signal_section(result: DriftResult, shares: Mapping[str, float] | None) -> str:
    column = result.signal
    if column is None or shares is None:
        return ""
    total = sum(result.current_signals.values()) or 1
    groups = [(name, float(shares.get(name, 0.0)), result.current_signals.get(name, 0) / total) for name in SIGNALS]
    colour = _DRIFT_COLOUR if column.drifted else _CURRENT_COLOUR
    return (f'<div class="col{" drifted" if column.drifted else ""}"><h3>predicted signal: '
            f'{"drifted" if column.drifted else "stable"}</h3><p>{html.escape(column.method)} {column.score:.3f} '
            f"(threshold {column.threshold:g}); reference: {html.escape(result.signal_reference)}</p>"
            f"{_bars_svg(groups, colour, width=240, named=True)}</div>")


def brief_report_html(
    result: DriftResult,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    metrics: Mapping[str, Any],
    model_version: str,
    window: str,
    full_report: str,
) -> str:
    """The reduced report: the verdict, every column's test, and each column's distribution in the reference and
    in the whole window (histograms over the reference and window values' 0.5-99.5 % range), with where the full
    Evidently report is kept. Self-contained: opens from a mail client, offline, without scripts."""
    shares, _ = reference_signal_distribution(metrics)
    columns = sorted(result.features, key=lambda c: (not c.drifted, -c.score))
    sections = [_signal_section(result, shares)]
    sections += [_feature_section(c, reference[c.column], current[c.column]) for c in columns]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Drift summary: signal-lstm {html.escape(model_version)}</title>
<style>body{{font-family:sans-serif;margin:1.5em}} .grid{{display:flex;flex-wrap:wrap;gap:12px}}
.col{{border:1px solid #ddd;padding:6px 10px;width:370px}} .col h3{{margin:4px 0;font-size:1em}}
.col p{{margin:2px 0;font-size:.85em}} .drifted{{border-color:{_DRIFT_COLOUR}}} .drifted h3{{color:{_DRIFT_COLOUR}}}
.range{{color:#666}}</style></head>
<body>
<h1>{html.escape(result.headline().capitalize())}</h1>
<p>Model signal-lstm <b>{html.escape(model_version)}</b> (production); window {html.escape(window)}:
{result.current_rows:,} logged predictions ({result.compared_rows:,} compared by Evidently); reference:
{result.reference_rows:,} training rows. Rule: drift when at least {result.drift_share:.0%} of the
{len(result.features)} input features drift (measured {result.drifted_share:.0%}) or the predicted signal drifts.</p>
<p>This is a summary of the Evidently report. The full, interactive report is kept at
<code>{html.escape(full_report)}</code>.</p>
<p>Bars: <span style="color:{_REFERENCE_COLOUR}">&#9632; reference</span>,
<span style="color:{_CURRENT_COLOUR}">&#9632; window</span> (<span style="color:{_DRIFT_COLOUR}">&#9632;</span>
where the column drifted); each bar is a bin's share of the rows.</p>
<div class="grid">
{"".join(sections)}
</div>
</body></html>
"""
