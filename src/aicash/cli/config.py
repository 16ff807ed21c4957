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
    table.add_row("AWS credentials (boto3 chain)", aws_credentials_source())
    console.print(table)


def aws_credentials_source() -> str:
    """Where boto3's standard chain finds credentials (env, shared file, role...), never the keys."""
    import boto3

    creds = boto3.Session().get_credentials()
    if creds is None:
        return "none found"
    return f"{creds.method} (access key ****{creds.access_key[-4:]})"
