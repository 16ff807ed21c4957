"""The root `aicash` command: reads the settings once and mounts each area's command group."""

from __future__ import annotations

import importlib

import typer

from aicash.cli.common import fail
from aicash.settings import SettingsError, load_settings

app = typer.Typer(
    name="aicash",
    help="AI Cash Evolution ML platform: market data, features, training, serving, monitoring, infrastructure.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# (module under aicash.cli, group name, help); each module exposes a Typer `app`.
GROUPS: tuple[tuple[str, str, str], ...] = (
    ("config", "config", "Show the effective settings."),
    ("data", "data", "Ingest, generate and list market candles."),
    ("db", "db", "Database migrations and imports."),
    ("features", "features", "Feast feature repository: apply, materialize, show."),
    ("pipeline", "pipeline", "Kubeflow pipelines: run locally, compile, submit, schedule."),
    ("models", "models", "Model registry: list, show, promote, rollback."),
    ("keys", "keys", "API keys for the inference service."),
    ("serve", "serve", "Serve the approved model with BentoML."),
    ("monitor", "monitor", "Drift reports, live outcomes, alerts, canary judgement."),
    ("infra", "infra", "Infrastructure as code: render what Pulumi would apply."),
)


@app.callback()
def main(ctx: typer.Context) -> None:
    """Read the settings once; an invalid value exits 2 naming the variable."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        fail(str(exc))
    ctx.obj = {"settings": settings}


for module_name, group, help_text in GROUPS:
    try:
        module = importlib.import_module(f"aicash.cli.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"aicash.cli.{module_name}":
            raise
        continue  # the area has not landed yet
    app.add_typer(module.app, name=group, help=help_text)
