"""`aicash experiments`: the model searches recorded in the database: list them, show one's leaderboard, write its
HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from aicash.cli.common import bad_input_exits, console, fail
from aicash.cli.db import ready_engine

app = typer.Typer(no_args_is_help=True)
# Width of the tables when the output is a file or a pipe (no terminal to fit): a leaderboard row on one line.
PIPED_WIDTH = 200


def _tables() -> Console:
    """The console for the wide tables: the terminal's width, or PIPED_WIDTH when there is no terminal."""
    return console if console.is_terminal else Console(width=PIPED_WIDTH)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v, 4)}" for k, v in params.items()) or "defaults"


@app.command("list")
def list_(
    ctx: typer.Context,
    limit: int = typer.Option(20, "--limit", min=1, help="How many of the latest experiments to show."),
) -> None:
    """The latest model searches, newest first: trials, the winner, its Sharpe, DSR and PBO, the version it
    registered and the gate's decision."""
    from aicash.experiments import list_experiments

    records = list_experiments(ready_engine(ctx), limit)
    if not records:
        console.print("no experiments recorded yet: run a search (`aicash pipeline run model-search --symbol S "
                      "--timeframe T --trials N`)")
        return
    table = Table(title="model searches", box=None, pad_edge=False, header_style="bold underline")
    for column in ("id", "pipeline", "series", "trials", "winner", "Sharpe", "DSR", "PBO", "version", "decision",
                   "created (UTC)"):
        table.add_column(column, overflow="fold",
                         justify="right" if column in {"id", "trials", "Sharpe", "DSR", "PBO"} else "left")
    for r in records:
        style = {"approved": "green", "rejected": "red"}.get(r["decision"] or "")
        table.add_row(str(r["id"]), r["pipeline"], f"{', '.join(r['series'])} {r['timeframe']}", str(r["n_trials"]),
                      f"#{r['selected_trial']} {r['family']}", _fmt(r["sharpe"]), _fmt(r["deflated_sharpe"]),
                      _fmt(r["pbo"]), r["model_version"] or "-", r["decision"] or "-",
                      f"{r['created_at']:%Y-%m-%d %H:%M}", style=style)
    _tables().print(table)


def _leaderboard(trials: list[dict[str, Any]]) -> Table:
    from aicash.experiments.report import ranked

    table = Table(title="leaderboard (out of sample, by Sharpe after costs)", box=None, pad_edge=False,
                  header_style="bold underline")
    for column in ("trial", "family", "parameters", "accuracy", "dir. accuracy", "win rate (trades)", "coverage",
                   "ECE", "Sharpe", "IC", "seconds", ""):
        table.add_column(column, justify="left" if column in {"family", "parameters", ""} else "right",
                         overflow="fold")
    for t in ranked(trials):
        table.add_row(str(t["number"]), t["family"], _params(t["params"]), _pct(t["accuracy"]),
                      _pct(t["directional_accuracy"]), f"{_pct(t['win_rate'])} ({_fmt(t['trades'])})",
                      _pct(t["coverage"]), _fmt(t["calibration_error"]), _fmt(t["sharpe"]),
                      _fmt(t["information_coefficient"]), _fmt(t["seconds"]),
                      "<- selected" if t["selected"] else "", style="bold green" if t["selected"] else None)
    return table


@app.command("show")
def show(
    ctx: typer.Context,
    experiment_id: int = typer.Argument(..., metavar="ID", help="The experiment's id (`aicash experiments list`)."),
    html: Path | None = typer.Option(None, "--html", help="Also write the search report (HTML) to this file.",
                                     dir_okay=False),
) -> None:
    """Every trial of a search (family, parameters, accuracy, directional accuracy, win rate and trades, coverage,
    ECE, Sharpe, IC; the winner marked), the evidence against luck (DSR, PBO, expected maximum Sharpe), the version
    and the gate's decision."""
    from aicash.experiments import UnknownExperimentError, get_experiment

    with bad_input_exits(UnknownExperimentError):
        experiment = get_experiment(ready_engine(ctx), experiment_id)
    search = experiment["search"]
    deflated = search.get("deflated_sharpe") or {}
    console.print(f"[bold]experiment {experiment['id']}[/]  {experiment['pipeline']}  "
                  f"{', '.join(experiment['series'])} {experiment['timeframe']}  sampler {experiment['sampler']}, "
                  f"seed {experiment['seed']}", highlight=False, soft_wrap=True)
    finished = experiment["finished_at"]
    console.print(f"created: {experiment['created_at']:%Y-%m-%d %H:%M:%S}  finished: "
                  f"{'-' if finished is None else f'{finished:%Y-%m-%d %H:%M:%S}'}", highlight=False)
    console.print(f"winner: trial {experiment['selected_trial']} of {experiment['n_trials']}, {experiment['family']} "
                  f"({_params(experiment['params'])})", highlight=False, soft_wrap=True)
    pbo = experiment["pbo"]
    console.print(f"deflated Sharpe ratio (DSR): {_fmt(experiment['deflated_sharpe'])}  PBO: "
                  f"{'n/a (fewer than 2 trials)' if pbo is None else _fmt(pbo)}", highlight=False, soft_wrap=True)
    console.print(f"expected max Sharpe under no skill: {_fmt(experiment['expected_max_sharpe'])} per bar (winner "
                  f"{_fmt(deflated.get('sharpe'))} per bar; variance of the trials' Sharpe "
                  f"{_fmt(experiment['sharpe_variance'])})", highlight=False, soft_wrap=True)
    version = experiment["model_version"] or "none registered yet"
    console.print(f"version: {version}  decision: {experiment['decision'] or 'not decided yet'}"
                  + "".join(f"\n  - {r}" for r in experiment["reasons"]), highlight=False, soft_wrap=True)
    _tables().print(_leaderboard(experiment["trials"]))
    if html is not None:
        _write_report(experiment, html)


def _write_report(experiment: dict[str, Any], path: Path) -> None:
    from aicash.experiments import equity_from_json
    from aicash.experiments.report import render_search_report

    page = render_search_report(experiment, experiment["trials"], equity_from_json(experiment["equity"]), None)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        fail(f"--html {path}: cannot write the report ({exc.strerror}): choose a writable file")
    console.print(f"report written to {path} ({len(page) / 1024:,.0f} KiB)", highlight=False, soft_wrap=True)

