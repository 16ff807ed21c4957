"""`aicash models`: the model registry: list versions, show a model card, promote, roll back."""

from __future__ import annotations

import getpass
import json
from typing import Any

import typer
from rich.table import Table

from aicash.cli.common import bad_input_exits, console, fail
from aicash.cli.db import ready_engine

app = typer.Typer(no_args_is_help=True)

# Shown in `list` when present, in this order; otherwise the first numeric metrics.
KEY_METRICS = ("accuracy", "f1_macro", "win_rate", "sharpe", "samples", "n_train")
MAX_METRICS_SHOWN = 3


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _key_metrics(metrics: dict[str, Any]) -> str:
    """The out-of-sample figures of the model (the trainer's `aggregate.model`), else the top-level numbers."""
    metrics = metrics.get("aggregate", {}).get("model", metrics)
    numeric = [k for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)]
    keys = [k for k in KEY_METRICS if k in numeric] or numeric
    return "\n".join(f"{k}={_fmt(metrics[k])}" for k in keys[:MAX_METRICS_SHOWN])


# The model's figures `show` leads with, from metrics.json's `aggregate.model`, in this order.
CARD_FIGURES = (("accuracy", "accuracy"), ("win_rate", "win rate"), ("trades", "trades"),
                ("average_confidence", "average confidence"), ("coverage", "coverage"),
                ("sharpe", "Sharpe after costs"), ("samples", "samples scored"))


def _out_of_sample_table(metrics: dict[str, Any]) -> Table | None:
    """The walk-forward figures of the model beside the guide's targets; None for metrics without them."""
    from aicash.training.metrics import guide_targets

    aggregate = metrics.get("aggregate")
    model = aggregate.get("model") if isinstance(aggregate, dict) else None
    if not isinstance(model, dict):
        return None
    targets = {name: (target, met) for name, _, target, met in guide_targets(model)}
    table = Table("figure", "value", "the guide's target", title="out of sample (walk-forward)")
    for key, label in CARD_FIGURES:
        if key in model:
            target, met = targets.get(key, (None, False))
            goal = "" if target is None else f"> {target:.0%}: {'met' if met else 'not met'}"
            table.add_row(label, _fmt(model[key]) if model[key] is not None else "n/a", goal)
    return table


def _search_line(metrics: dict[str, Any]) -> str:
    """The search that produced the version (metrics.json's "search" block): trials, winner, DSR, PBO."""
    search = metrics.get("search")
    if not isinstance(search, dict):
        return "search: no search recorded"
    deflated: dict[str, Any] = search.get("deflated_sharpe") or {}
    pbo: dict[str, Any] = search.get("pbo") or {}
    experiment = search.get("experiment_id")
    return (f"search: {search.get('trials', 'n/a')} trial(s), winner trial {search.get('selected_trial', 'n/a')} "
            f"({search.get('family', 'n/a')}); deflated Sharpe ratio (DSR) {_fmt(deflated.get('probability'))} "
            f"(Sharpe {_fmt(deflated.get('sharpe'))} per bar vs {_fmt(deflated.get('expected_max_sharpe'))} expected "
            f"by luck); PBO {_fmt(pbo['probability']) if pbo.get('probability') is not None else 'n/a (one trial)'}"
            + (f"; experiment {experiment} (`aicash experiments show {experiment}`)" if experiment is not None else ""))


def _summary(action: str, d: dict[str, Any]) -> str:
    """One readable line per audit entry."""
    if action == "model.register":
        text = f"registered as {d.get('status')}" + (f": {'; '.join(d['reasons'])}" if d.get("reasons") else "")
    elif action == "model.promote":
        text = (f"{d.get('version')}: {d.get('from_status')} {d.get('from_traffic', 0):g}% -> "
                f"{d.get('to_status')} {d.get('to_traffic', 0):g}%")
        text += f"; archived {d['archived']}" if d.get("archived") else ""
        text += f"; ended canary {d['replaced_canary']}" if d.get("replaced_canary") else ""
        text += "; FORCED past the gate" if d.get("forced") else ""
    else:
        text = f"{d.get('new_production')} restored, {d.get('demoted')} archived"
    return text + (f"; reason: {d['reason']}" if d.get("reason") else "")


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Every registered version: status, traffic share, key metrics, creation time (newest first)."""
    from aicash.registry import list_models, traffic_split

    engine = ready_engine(ctx)
    records = list_models(engine)
    if not records:
        console.print("no models registered yet: run the training pipeline (`aicash pipeline run train`)")
        return
    share = dict(traffic_split(engine))  # production's effective share is what the canary leaves
    table = Table(title="signal-lstm versions", box=None, pad_edge=False, header_style="bold underline")
    table.add_column("version", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("traffic", justify="right", no_wrap=True)
    table.add_column("metrics", no_wrap=True)
    table.add_column("created (UTC)", min_width=10)
    for r in records:
        style = "bold green" if r.status == "production" else ("yellow" if r.is_canary else None)
        table.add_row(r.version, r.role, f"{share.get(r.version, 0.0):g}%", _key_metrics(r.metrics),
                      f"{r.created_at:%Y-%m-%d %H:%M}", style=style)
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context, version: str = typer.Argument(..., help="Version, e.g. v20250301-142233-3f9a1c2.")
) -> None:
    """The model card: status, metrics, gate reasons, the search behind it (trials, DSR, PBO), artifacts (URI,
    SHA-256) and audit history."""
    from aicash.registry import UnknownVersionError, get_model, model_history

    engine = ready_engine(ctx)
    with bad_input_exits(UnknownVersionError):
        record = get_model(engine, version)
    gate = {True: "passed", False: "failed", None: "not run"}[record.gate_passed]
    console.print(f"[bold]{record.name} {record.version}[/]  status: [bold]{record.role}[/]  "
                  f"traffic: {record.traffic_percentage:g}%")
    console.print(f"created: {record.created_at:%Y-%m-%d %H:%M:%S}  updated: {record.updated_at:%Y-%m-%d %H:%M:%S}")
    console.print(f"gate: {gate}" + "".join(f"\n  - {r}" for r in record.reasons), highlight=False)
    console.print(_search_line(record.metrics), highlight=False, soft_wrap=True)
    figures = _out_of_sample_table(record.metrics)
    if figures is not None:
        console.print(figures)
    metrics = Table("metric", "value", title="metrics")
    for key, value in record.metrics.items():
        metrics.add_row(key, _fmt(value))
    console.print(metrics)
    console.print(f"artifacts: {record.artifact_uri}", highlight=False, soft_wrap=True)
    console.print(f"sha256:    {record.artifact_sha256}", highlight=False)
    history = Table("at (UTC)", "actor", "action", "details", title="audit history")
    for e in model_history(engine, version):
        history.add_row(f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.action, _summary(e.action, e.details))
    console.print(history)


@app.command("promote")
def promote(
    ctx: typer.Context,
    version: str = typer.Argument(..., help="Version to promote."),
    traffic: float = typer.Option(..., "--traffic", help="Percent of traffic: 1-99 canary, 100 production, 0 ends "
                                                          "a canary."),
    force: bool = typer.Option(False, "--force", help="Promote a version the gate rejected (needs --reason)."),
    reason: str | None = typer.Option(None, "--reason", help="Why; kept in the audit log (required with --force)."),
    actor: str | None = typer.Option(None, "--actor", help="Who is promoting (default: cli:<user>)."),
) -> None:
    """Give VERSION a share of the traffic; 100 makes it production and archives the previous one."""
    from aicash.registry import RegistryError, get_model
    from aicash.registry import promote as run_promote

    if not 0 <= traffic <= 100:
        fail(f"--traffic {traffic:g} is outside 0..100: use e.g. --traffic 10 for a canary or --traffic 100 for "
             "production")
    if force and not (reason and reason.strip()):
        fail("--force needs --reason TEXT saying why the gate is overridden (kept in the audit log)")
    engine = ready_engine(ctx)
    with bad_input_exits(RegistryError):
        record = get_model(engine, version)
        if _already(record.status, record.traffic_percentage, traffic):
            console.print(f"{version} is already {record.role} with {record.traffic_percentage:g}% of the traffic: "
                          "nothing to change", highlight=False)
            return
        if traffic > 0 and record.gate_passed is not True and not force:
            why = "; ".join(record.reasons) or "no gate decision"
            fail(f"{version} is {record.status} ({why}): add --force --reason TEXT to promote it anyway")
        record = run_promote(engine, version, traffic, force=force, reason=reason, actor=_actor(actor))
    console.print(f"{record.version} is now {record.role} with {record.traffic_percentage:g}% of the traffic")


def _already(status: str, current: float, traffic: float) -> bool:
    """Whether promoting to `traffic` would leave the version as it is: production at 100, a canary at the same
    share, or a non-production version at 0."""
    if status == "production":
        return traffic == 100
    return traffic < 100 and current == traffic


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    reason: str | None = typer.Option(None, "--reason", help="Why; kept in the audit log."),
    actor: str | None = typer.Option(None, "--actor", help="Who is rolling back (default: cli:<user>)."),
) -> None:
    """Restore the previous production version at 100% and archive the current one."""
    from aicash.registry import RegistryError
    from aicash.registry import rollback as run_rollback

    with bad_input_exits(RegistryError):
        record = run_rollback(ready_engine(ctx), _actor(actor), reason=reason)
    console.print(f"rolled back: {record.version} is production again")


@app.command("weights")
def weights(ctx: typer.Context) -> None:
    """The rule signal's weights in force (served by GET /weights) and every saved version."""
    from aicash.signals.rule import COMPONENTS
    from aicash.signals.weights import current_weights, list_weights

    engine = ready_engine(ctx)
    versions = list_weights(engine)
    in_force = current_weights(engine)
    title = f"weights in force: version {versions[0].version}" if versions else "weights in force: defaults (equal)"
    console.print(f"[bold]{title}[/]  " + "  ".join(f"{c}={in_force[c]:g}" for c in COMPONENTS), highlight=False)
    if not versions:
        console.print("no optimized version saved yet: run the signal-weights pipeline")
        return
    table = Table(title="signal weights versions", box=None, pad_edge=False, header_style="bold underline")
    for column in ("version", "source", "out-of-sample", "vs in force", "created (UTC)"):
        table.add_column(column, no_wrap=column != "created (UTC)")
    for v in versions:
        m = v.metrics
        score, base = m.get("oos_score"), m.get("baseline_oos_score")
        table.add_row(str(v.version), v.source, f"{m.get('objective', '')} {_fmt(score)}", _fmt(base),
                      f"{v.created_at:%Y-%m-%d %H:%M}")
    console.print(table)
