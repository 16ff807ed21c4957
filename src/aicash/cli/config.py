"""`aicash config`: the effective settings."""

from __future__ import annotations

import typer
from rich.table import Table

from aicash.cli.common import console, settings_of

app = typer.Typer(no_args_is_help=True)


@app.command("show")
def show(ctx: typer.Context) -> None:
    """Print the effective settings (environment, .env, defaults) with secrets masked."""
    table = Table("setting", "value", title="aicash settings")
    for name, value in settings_of(ctx).masked().items():
        table.add_row(name, value)
    console.print(table)
