"""`aicash features`: the Feast feature repository in features/: apply, materialize, show, env.

Feast and the repository's code (features/store.py, features/online.py) are imported inside the commands, so
`aicash --help` stays fast.
"""

from __future__ import annotations

import json
import shlex
from datetime import datetime
from types import ModuleType

import pandas as pd
import typer
from rich.table import Table

from aicash.cli.common import bad_input_exits, console, fail, settings_of
from aicash.cli.data import progress_bar
from aicash.cli.db import ready_engine
from aicash.market.candles import BadSymbolError, normalize_symbol

app = typer.Typer(no_args_is_help=True)


def features_package() -> tuple[ModuleType, ModuleType]:
    """(features.store, features.online): the feature repository's package, imported when a command needs it
    (Feast takes seconds to import)."""
    from features import online, store

    return store, online


def parse_time(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 time as UTC (naive means UTC), or exit 2 naming the option."""
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except ValueError:
        fail(f"{option} {value!r} is not a date/time: use ISO 8601, e.g. 2024-01-31 or 2024-01-31T13:00Z")
    return (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")).to_pydatetime()


@app.command("apply")
def apply(ctx: typer.Context) -> None:
    """Register the feature repository (entities, sources, views, service) and create its online tables."""
    settings = settings_of(ctx)
    ready_engine(ctx)
    store, _ = features_package()
    with console.status("feast apply..."):
        result = store.apply(settings)
    console.print(f"feature repository applied ({settings.mode}; registry: {result.registry})", highlight=False,
                  soft_wrap=True)
    table = Table("object", box=None, pad_edge=False, header_style="bold underline")
    for name in result.applied:
        table.add_row(name)
    for name in result.removed:
        table.add_row(f"[red]removed[/] {name}")
    console.print(table)


@app.command("materialize")
def materialize(
    ctx: typer.Context,
    start: str | None = typer.Option(None, "--start", help="First bar time (ISO 8601, UTC); default: the first."),
    end: str | None = typer.Option(None, "--end", help="Last bar time (ISO 8601, UTC); default: the newest."),
    incremental: bool = typer.Option(False, "--incremental", help="Continue from the last materialization."),
) -> None:
    """Rebuild the offline tables from the candles and load each series' latest features into the online store."""
    from aicash.feature_tables import FeatureInputError

    settings = settings_of(ctx)
    begin, finish = parse_time(start, "--start"), parse_time(end, "--end")
    ready_engine(ctx)
    store, _ = features_package()
    with bad_input_exits(FeatureInputError, store.NotAppliedError), progress_bar() as bar:
        tasks: dict[str, int] = {}

        def progress(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total)
            bar.update(tasks[step], completed=done, total=total)

        result = store.materialize(settings, begin, finish, incremental=incremental, progress=progress)
    if result.up_to_date:
        console.print(f"online store already up to date (last materialized up to {result.end:%Y-%m-%d %H:%M} UTC)")
        return
    console.print(
        f"offline tables: {result.offline.rows:,} bars of {result.offline.series} series, "
        f"{result.offline.windows} windows"
    )
    for view, entities in result.views.items():
        console.print(
            f"materialized {view}: {entities} series, {result.start:%Y-%m-%d %H:%M} .. {result.end:%Y-%m-%d %H:%M} UTC"
        )


@app.command("show")
def show(
    ctx: typer.Context,
    symbol: str = typer.Argument(..., help="Symbol, e.g. EURUSD."),
    timeframe: str | None = typer.Option(None, "--timeframe", help="Bar length; default: the one timeframe the "
                                         "symbol has candles in."),
    window: bool = typer.Option(False, "--window", help="Also print the whole window matrix (64 x 16 values)."),
) -> None:
    """Print a symbol's online features (latest bar's indicators, model window) as JSON."""
    from aicash.cli.series import resolve_timeframe
    from aicash.market.ingest import count_bars
    from aicash.model_input import MODEL_FEATURES

    settings = settings_of(ctx)
    with bad_input_exits(BadSymbolError):
        symbol = normalize_symbol(symbol)
    engine = ready_engine(ctx)
    timeframe = resolve_timeframe(engine, [symbol], timeframe)
    if count_bars(engine, symbol, timeframe) == 0:
        fail(f"unknown symbol {symbol}: no {timeframe} candles (see `aicash data list`)")
    store, online = features_package()
    from feast.errors import FeatureServiceNotFoundException

    try:
        with bad_input_exits(online.NoOnlineFeaturesError):
            features = online.online_features(store.get_store(settings), symbol, timeframe)
    except FeatureServiceNotFoundException:
        fail("the feature repository is not applied: run `aicash features apply` then `aicash features materialize`")
    matrix = {"shape": list(features.window.shape), "features": list(MODEL_FEATURES), "order": "oldest bar first"}
    if window:
        matrix["values"] = features.window.tolist()
    payload = {
        "symbol": features.symbol,
        "timeframe": features.timeframe,
        "event_timestamp": features.event_timestamp.isoformat(),
        "feature_service": online.FEATURE_SERVICE,
        "indicators": features.indicators,
        "window": matrix,
    }
    typer.echo(compact_lists(json.dumps(payload, indent=2)))


def compact_lists(text: str) -> str:
    """Indented JSON with each list of plain values (the shape, the feature names) on one line: still JSON."""
    import re

    return re.sub(r"\[\s*\n\s*((?:[^\[\]{}\n]+\n\s*)*?[^\[\]{}\n]+)\n\s*\]",
                  lambda m: "[" + " ".join(part.strip() for part in m[1].splitlines()) + "]", text)


@app.command("env")
def env(ctx: typer.Context) -> None:
    """Print `export` lines for Feast's own CLI (`eval "$(aicash features env)"; feast apply`).
    In cluster mode they hold the database password."""
    from features.config import cli_env

    for name, value in cli_env(settings_of(ctx)).items():
        typer.echo(f"export {name}={shlex.quote(value)}")
