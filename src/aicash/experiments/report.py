"""The search report: one self-contained HTML page (PNG charts embedded as base64) with the trials' Sharpe ratios
against the best one expected by luck, the winner's equity against the baselines, the leaderboard and the gate."""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

DPI = 80
MODEL_COLUMN = "model"  # aicash.training.walk_forward.MODEL_KEY, not imported: that would import torch
# Hours a market is open in a year when nothing better is known (FX: 24 hours, 5 days, 52 weeks).
MARKET_HOURS_PER_YEAR = 24 * 5 * 52
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}td.params{text-align:left;font-size:90%}
tr.selected{background:#e8f5e9;font-weight:bold}
.ok{color:#17702a;font-weight:bold}.bad{color:#a11;font-weight:bold}img{max-width:100%}
"""
LEADERBOARD = ("trial", "family", "parameters", "accuracy", "directional accuracy", "win rate", "trades", "coverage",
               "ECE", "Sharpe", "IC", "seconds", "selected")


def render_search_report(experiment: Mapping[str, Any], trials: Sequence[Mapping[str, Any]],
                         equity: pd.DataFrame | None, gate: Mapping[str, Any] | None) -> str:
    """The whole report as an HTML string.

    `experiment`: a row as `get_experiment` returns it, or at least `{"search": <metrics.json's search block>}`
    (id, pipeline, series, timeframe, sampler and seed are shown when present); `trials`: the trial records;
    `equity`: the winner's cumulative log return ("model") beside the baselines and "buy_and_hold", or None when
    not available; `gate`: `GateDecision.to_dict()` (approved, reasons, passed) or `{"decision", "reasons"}`; None:
    the experiment's own `decision` and `reasons`, if any.
    """
    search = experiment.get("search") or {}
    winner = next((t for t in trials if t.get("selected")), None)
    family = (winner or {}).get("family") or search.get("family") or "?"
    title = f"Model search {experiment.get('id', '')}".strip()
    sections = [
        f"<h1>{html.escape(title)}: {html.escape(', '.join(experiment.get('series') or []))} "
        f"{html.escape(str(experiment.get('timeframe') or ''))}</h1>",
        f"<p>{len(trials)} trials ({html.escape(str(experiment.get('sampler') or 'n/a'))} sampler, seed "
        f"{html.escape(str(experiment.get('seed')))}); the winner is trial {search.get('selected_trial', 'n/a')}, "
        f"a <b>{html.escape(family)}</b> with {html.escape(_params(search.get('params') or {}))}.</p>",
        _gate_section(gate, experiment),
        "<h2>Is the winner better than luck?</h2>",
        _evidence_table(search),
        "<h2>The trials' Sharpe ratios against the best expected by luck</h2>",
        _sharpe_section(trials, search, experiment),
        "<h2>The winner's equity after costs, against the baselines</h2>",
        _img(_equity_chart(equity, family)) if equity is not None and not equity.empty
        else "<p>No equity curves recorded for this search.</p>",
        "<h2>Leaderboard (out of sample, by Sharpe after costs)</h2>",
        _leaderboard(trials),
    ]
    return ("<!doctype html><html><head><meta charset='utf-8'><title>aicash search report</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(sections)}</body></html>")


def _fmt(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.4g}"
    return html.escape(str(value))


def _params(params: Mapping[str, Any]) -> str:
    """The parameters as plain text, `name=value, ...` (escape before putting it in HTML)."""
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()) or "defaults"


def _table(header: Sequence[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _gate_section(gate: Mapping[str, Any] | None, experiment: Mapping[str, Any]) -> str:
    if gate is None and experiment.get("decision"):
        gate = {"decision": experiment["decision"], "reasons": experiment.get("reasons") or []}
    if gate is None:
        return "<h2>Gate</h2><p>Not decided yet.</p>"
    approved = gate["approved"] if "approved" in gate else gate.get("decision") == "approved"
    verdict = "<span class='ok'>APPROVED</span>" if approved else "<span class='bad'>REJECTED</span>"
    version = experiment.get("model_version")
    registered = f" as {html.escape(version)}" if version else ""
    items = "".join(f"<li class='bad'>{html.escape(str(r))}</li>" for r in gate.get("reasons") or [])
    items += "".join(f"<li>{html.escape(str(r))}</li>" for r in gate.get("passed") or [])
    return f"<h2>Gate: {verdict}{registered}</h2><ul>{items}</ul>"


def _evidence_table(search: Mapping[str, Any]) -> str:
    deflated = search.get("deflated_sharpe") or {}
    pbo = search.get("pbo") or {}
    rows: list[list[object]] = [
        ["trials", search.get("trials")],
        ["deflated Sharpe ratio (DSR): P(true Sharpe > the best expected by luck)", deflated.get("probability")],
        ["winner's Sharpe ratio (per bar)", deflated.get("sharpe")],
        ["expected maximum Sharpe ratio of the trials under no skill (per bar)", deflated.get("expected_max_sharpe")],
        ["variance of the trials' Sharpe ratios (per bar)", search.get("sharpe_variance")],
        ["observations, skewness, kurtosis",
         f"{_fmt(deflated.get('observations'))}, {_fmt(deflated.get('skewness'))}, {_fmt(deflated.get('kurtosis'))}"],
        ["probability of backtest overfitting (PBO)",
         pbo.get("probability") if pbo else "not computed (fewer than 2 trials)"],
    ]
    if pbo:
        rows.append(["PBO splits (blocks)", f"{_fmt(pbo.get('splits'))} ({_fmt(pbo.get('n_blocks'))})"])
    return _table(["figure", "value"], rows)


def annualisation(trials: Sequence[Mapping[str, Any]], search: Mapping[str, Any],
                  experiment: Mapping[str, Any]) -> tuple[float | None, str]:
    """The factor that turns a per-bar Sharpe ratio into the trials' annualised ones, and where it comes from:
    `bars_per_year` when recorded; else the winner's annualised Sharpe over its per-bar one; else the timeframe
    in a 24 x 5 market. (None, why) when none applies."""
    bars = experiment.get("bars_per_year") or search.get("bars_per_year")
    if isinstance(bars, int | float) and bars > 0:
        return math.sqrt(bars), f"sqrt of {bars:.0f} bars a year"
    winner = next((t for t in trials if t.get("selected")), {})
    annual, per_bar = winner.get("sharpe"), (search.get("deflated_sharpe") or {}).get("sharpe")
    if isinstance(annual, int | float) and isinstance(per_bar, int | float) and annual * per_bar > 0:
        return annual / per_bar, "the winner's annualised over its per-bar Sharpe ratio"
    hours = _timeframe_hours(str(experiment.get("timeframe") or ""))
    if hours:
        bars = MARKET_HOURS_PER_YEAR / hours
        return math.sqrt(bars), f"sqrt of {bars:.0f} bars a year (timeframe, 24 x 5 market; approximate)"
    return None, "no annualisation factor known"


def _timeframe_hours(timeframe: str) -> float | None:
    match = re.fullmatch(r"(\d+)\s*([mhdw])", timeframe.strip().lower())
    if not match:
        return None
    count, unit = int(match.group(1)), match.group(2)
    hours = {"m": 1 / 60, "h": 1, "d": 24, "w": 24 * 5}[unit] * count
    return hours or None


def _sharpe_section(trials: Sequence[Mapping[str, Any]], search: Mapping[str, Any],
                    experiment: Mapping[str, Any]) -> str:
    sharpes = [float(t["sharpe"]) for t in trials if isinstance(t.get("sharpe"), int | float)]
    expected = (search.get("deflated_sharpe") or {}).get("expected_max_sharpe")
    factor, source = annualisation(trials, search, experiment)
    line = expected * factor if isinstance(expected, int | float) and factor else None
    text = (f"<p>Sharpe ratios after costs, annualised as each trial's figures are. Expected maximum of "
            f"{len(trials)} trials under no skill: {_fmt(expected)} per bar"
            + (f" = {line:.4g} annualised ({html.escape(source)})" if line is not None else f" ({html.escape(source)})")
            + ". A winner to the right of the line by a wide margin is more than the luck of the draw.</p>")
    if not sharpes:
        return text + "<p>No trial has a Sharpe ratio.</p>"
    winner = next((t for t in trials if t.get("selected")), None)
    return text + _img(_sharpe_chart(sharpes, line, winner))


def _sharpe_chart(sharpes: list[float], expected: float | None, winner: Mapping[str, Any] | None) -> Figure:
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.hist(sharpes, bins=max(5, min(30, len(sharpes))), color="#8fb3d9", edgecolor="white", label="trials")
    if expected is not None:
        ax.axvline(expected, color="#a11", linestyle="--", linewidth=1.5,
                   label=f"expected max. under no skill ({expected:.3g})")
    if winner is not None and isinstance(winner.get("sharpe"), int | float):
        ax.axvline(winner["sharpe"], color="#17702a", linewidth=2.0,
                   label=f"winner: trial {winner.get('number')} {winner.get('family')} ({winner['sharpe']:.3g})")
    ax.set_xlabel("Sharpe ratio after costs (annualised)")
    ax.set_ylabel("trials")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8, loc="best")
    return fig


def _equity_chart(equity: pd.DataFrame, family: str) -> Figure:
    fig, ax = plt.subplots(figsize=(10, 4))
    for name in equity.columns:
        style: dict[str, Any] = {"linewidth": 2.0} if name == MODEL_COLUMN else {"linewidth": 1.0, "alpha": 0.8}
        if name == "buy_and_hold":
            style["linestyle"] = ":"
        label = f"winner ({family})" if name == MODEL_COLUMN else str(name)
        ax.plot(equity.index, equity[name], label=label, **style)
    ax.axhline(0.0, color="#999", linewidth=0.5)
    ax.set_ylabel("cumulative log return")
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    return fig


def _sort_key(trial: Mapping[str, Any]) -> tuple[bool, float, int]:
    sharpe = trial.get("sharpe")
    if isinstance(sharpe, int | float) and math.isfinite(sharpe):
        return (False, -float(sharpe), int(trial.get("number") or 0))
    return (True, 0.0, int(trial.get("number") or 0))


def ranked(trials: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The trials by Sharpe after costs, best first (trials without one last, then by number)."""
    return sorted(trials, key=_sort_key)


def _leaderboard(trials: Sequence[Mapping[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in LEADERBOARD)
    body = []
    for t in ranked(trials):
        cells = [t.get("number"), t.get("family"), _params(t.get("params") or {}), t.get("accuracy"),
                 t.get("directional_accuracy"), t.get("win_rate"), t.get("trades"), t.get("coverage"),
                 t.get("calibration_error"), t.get("sharpe"), t.get("information_coefficient"), t.get("seconds"),
                 "winner" if t.get("selected") else ""]
        row = "".join(f"<td class='params'>{html.escape(str(v))}</td>" if i == 2 else f"<td>{_fmt(v)}</td>"
                      for i, v in enumerate(cells))
        body.append(f"<tr class='selected'>{row}</tr>" if t.get("selected") else f"<tr>{row}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _img(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return f"<img alt='chart' src='data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}'>"
