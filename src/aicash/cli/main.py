"""The root `aicash` command: reads the settings once, mounts each area's command group when a command line names
it (so `aicash --help` or `aicash config show` import no pandas, alembic, Feast, torch or KFP), keeps Python's
warnings off the terminal, and turns an unreachable database, wherever a command meets it, into one short error and
exit code 2."""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup

from aicash.cli.common import fail
from aicash.cli.quiet_warnings import keep_warnings_in
from aicash.settings import SettingsError, load_settings


class RootGroup(TyperGroup):
    """The composition root: each area's group is imported when it is invoked (its help text is listed without
    importing it), and every command runs inside `invoke`, so a database outage is handled here, once."""

    _listing = False  # set while the root's own help lists the groups

    def list_commands(self, ctx: Any) -> list[str]:
        names = [group for _, group, _ in GROUPS]
        return [*names, *(name for name in super().list_commands(ctx) if name not in names)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The command or group `cmd_name`, its group module imported now (a stand-in while listing the help)."""
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        entry = next(((module, help_text) for module, group, help_text in GROUPS if group == cmd_name), None)
        if entry is None:
            return None
        if self._listing:  # the root's help needs only the name and the help text
            return TyperGroup(name=cmd_name, help=entry[1])
        command = _load_group(*entry)
        if command is not None:
            command.name = cmd_name
            self.commands[cmd_name] = command
        return command

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            from sqlalchemy.exc import DBAPIError

            from aicash.db.engine import is_unreachable, unreachable_message

            if not isinstance(exc, DBAPIError) or not is_unreachable(exc):
                raise
            fail(unreachable_message(exc, ctx.obj["settings"].sqlalchemy_url))


def _load_group(module_name: str, help_text: str) -> TyperGroup | None:
    """The click group of `aicash.cli.<module_name>`'s Typer `app`; None when that area has not landed yet."""
    try:
        module = importlib.import_module(f"aicash.cli.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"aicash.cli.{module_name}":
            raise
        return None
    group = typer.main.get_group(module.app)
    group.help = help_text
    return group


app = typer.Typer(
    cls=RootGroup,
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
    ("experiments", "experiments", "Model searches: the leaderboard of each, its search report."),
    ("keys", "keys", "API keys for the inference service."),
    ("serve", "serve", "Serve the approved model with BentoML."),
    ("monitor", "monitor", "Drift reports, live outcomes, alerts, canary judgement."),
    ("infra", "infra", "Infrastructure as code: render what Pulumi would apply."),
)


@app.callback()
def main(ctx: typer.Context) -> None:
    """Read the settings once; an invalid value exits 2 naming the variable. Python's warnings from here on go to
    AICASH_HOME/logs/warnings.log, not the terminal (the settings' own deprecation warnings are still shown)."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        fail(str(exc))
    keep_warnings_in(settings.aicash_home / "logs" / "warnings.log")
    ctx.obj = {"settings": settings}

