"""The training report: one self-contained HTML page (PNG charts embedded as base64), well under 1 MB."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from aicash.signals.rule import SIGNALS  # noqa: E402
from aicash.training.metrics import Metrics, guide_targets  # noqa: E402
from aicash.training.walk_forward import MODEL_KEY  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from aicash.training.result import TrainingResult

DPI = 80
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.ok{color:#17702a;font-weight:bold}.bad{color:#a11;font-weight:bold}img{max-width:100%}
"""


def render_report(result: TrainingResult) -> str:
    """The whole report as an HTML string."""
    data = result.data
    sections = [
        f"<h1>Training report: {html.escape(', '.join(data['series']))}</h1>",
        f"<p>{data['samples']:,} samples from {data['first_ts']} to {data['last_ts']}; "
        f"{data['out_of_sample_samples']:,} scored out of sample in {len(result.folds)} walk-forward folds; "
        f"horizon {data['horizon_bars']} bars; class balance "
        + ", ".join(f"{k} {v:.1%}" for k, v in data["class_balance"].items())
        + f". Run time {result.timings['total_seconds']:.1f} s.</p>",
        _gate_section(result),
        _search_section(result.search),
        "<h2>The guide's targets (network, out of sample)</h2>",
        _targets_table(result.model_metrics),
        "<h2>Out-of-sample figures (all test blocks pooled)</h2>",
        _metrics_table(result.aggregate),
        "<h2>Equity after costs</h2>",
        _img(_equity_chart(result)),
        "<h2>Calibration</h2>",
        _img(_reliability_chart(result)),
        "<h2>Confusion matrix (network, rows = true class)</h2>",
        _confusion_table(result.model_metrics),
        _img(_confusion_chart(result.model_metrics)),
        "<h2>Folds</h2>",
        _folds_table(result),
        "<h2>Configuration</h2>",
        _table(["setting", "value"], [[k, v] for k, v in result.config.model_dump().items()]),
    ]
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>aicash training report</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(sections)}</body></html>"
    )


def _gate_section(result: TrainingResult) -> str:
    decision = result.decision
    if decision is None:
        return "<h2>Gate</h2><p>Not evaluated.</p>"
    verdict = "<span class='ok'>APPROVED</span>" if decision.approved else "<span class='bad'>REJECTED</span>"
    items = "".join(f"<li class='bad'>{html.escape(r)}</li>" for r in decision.reasons)
    items += "".join(f"<li>{html.escape(r)}</li>" for r in decision.passed)
    return f"<h2>Gate: {verdict}</h2><ul>{items}</ul>"


def _search_section(search: Mapping[str, Any] | None) -> str:
    """The search that chose this configuration: trials, the deflated Sharpe ratio and the PBO behind the gate."""
    if not search:
        return "<h2>Search</h2><p>No search evidence.</p>"
    trials = search.get("trials")
    items = [f"{_fmt(trials)} trial{'' if trials == 1 else 's'}; selected: trial {_fmt(search.get('selected_trial'))}"
             f" ({_fmt(search.get('family'))}); variance of the trials' Sharpe ratios "
             f"{_fmt(search.get('sharpe_variance'))}"]
    dsr = search.get("deflated_sharpe")
    if isinstance(dsr, Mapping):
        items.append(f"deflated Sharpe ratio {_fmt(dsr.get('probability'))}: Sharpe {_fmt(dsr.get('sharpe'))} per "
                     f"period over {_fmt(dsr.get('observations'))} bars vs SR0 {_fmt(dsr.get('expected_max_sharpe'))}"
                     f", the best of {_fmt(dsr.get('n_trials'))} trial(s) expected by luck (skewness "
                     f"{_fmt(dsr.get('skewness'))}, kurtosis {_fmt(dsr.get('kurtosis'))})"
                     + (f"; {_fmt(dsr['note'])}" if dsr.get("note") else ""))
    pbo = search.get("pbo")
    items.append("probability of backtest overfitting: n/a (fewer than 2 trials)" if not isinstance(pbo, Mapping)
                 else f"probability of backtest overfitting {_fmt(pbo.get('probability'))} over "
                      f"{_fmt(pbo.get('splits'))} splits of {_fmt(pbo.get('n_blocks'))} blocks")
    return "<h2>Search</h2><ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>"


def _fmt(value: object) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _table(header: list[str], rows: list[list[object]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


_METRIC_COLUMNS = ["accuracy", "directional_accuracy", "win_rate", "trades", "coverage", "average_confidence",
                   "calibration_error", "cumulative_return", "sharpe", "information_coefficient"]
_COLUMN_NAMES = {"directional_accuracy": "directional accuracy of traded signals",
                 "information_coefficient": "IC (rank corr. of P(BUY) - P(SELL) with the return)"}


def _metrics_table(metrics: dict[str, Metrics]) -> str:
    rows = [[name, *(getattr(m, c) for c in _METRIC_COLUMNS)] for name, m in metrics.items()]
    return _table(["predictor", *(_COLUMN_NAMES.get(c, c) for c in _METRIC_COLUMNS)], rows)


def _targets_table(m: Metrics) -> str:
    rows = [[name, value, f"> {target:.0%}", "met" if met else "not met"]
            for name, value, target, met in guide_targets(m.to_dict())]
    return _table(["figure", "network", "target", ""], rows)


def _confusion_table(m: Metrics) -> str:
    return _table(["true \\ predicted", *SIGNALS], [[SIGNALS[i], *row] for i, row in enumerate(m.confusion)])


def _folds_table(result: TrainingResult) -> str:
    header = ["fold", "test from", "test to", "train", "test", "epochs", "best epoch", "network acc",
              "network win rate", "network avg. confidence", "network Sharpe", "best baseline acc",
              "best baseline Sharpe"]
    rows = []
    for f in result.folds:
        model = f.metrics[MODEL_KEY]
        others = [m for name, m in f.metrics.items() if name != MODEL_KEY]
        rows.append([
            f.number, f.test_start[:16], f.test_end[:16], f.train_samples, f.test_samples, f.fit.epochs,
            f.fit.best_epoch, model.accuracy, model.win_rate, model.average_confidence, model.sharpe,
            max((m.accuracy for m in others), default=None), max((m.sharpe for m in others), default=None),
        ])
    return _table(header, rows)


def _img(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return f"<img alt='chart' src='data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}'>"


def _equity_chart(result: TrainingResult) -> Figure:
    fig, ax = plt.subplots(figsize=(10, 4))
    for name in result.equity.columns:
        style: dict[str, Any] = {"linewidth": 2.0} if name == MODEL_KEY else {"linewidth": 1.0, "alpha": 0.8}
        if name == "buy_and_hold":
            style["linestyle"] = ":"
        ax.plot(result.equity.index, result.equity[name], label=name, **style)
    ax.axhline(0.0, color="#999", linewidth=0.5)
    ax.set_ylabel("cumulative log return")
    ax.set_title(f"Out-of-sample strategies after {result.config.cost_per_trade * 1e4:g} bp per trade")
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    return fig


def _reliability_chart(result: TrainingResult) -> Figure:
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.plot([0, 1], [0, 1], color="#999", linewidth=0.8, linestyle="--", label="perfect")
    for name, table in result.reliability.items():
        if name == "rule":  # its confidence is |score|, not a probability
            continue
        shown = table[table["count"] > 0]
        ax.plot(shown["confidence"], shown["accuracy"], marker="o", label=name)
    ax.set_xlabel("confidence of the predicted class")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    return fig


def _confusion_chart(m: Metrics) -> Figure:
    fig, ax = plt.subplots(figsize=(3.6, 3.2))
    ax.imshow(m.confusion, cmap="Blues")
    darkest = max(max(row) for row in m.confusion)
    for i, row in enumerate(m.confusion):
        for j, count in enumerate(row):
            color = "white" if count > darkest / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", fontsize=9, color=color)
    ax.set_xticks(range(len(SIGNALS)), SIGNALS)
    ax.set_yticks(range(len(SIGNALS)), SIGNALS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return fig
