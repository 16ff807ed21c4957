"""`aicash keys`: API keys for the inference service."""

from __future__ import annotations

import typer
from rich.table import Table

from aicash.cli.common import bad_input_exits, console
from aicash.cli.db import ready_engine
from aicash.serving.keys import ApiKeyError, create_key, list_keys, revoke_key

app = typer.Typer(no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Who the key is for, e.g. frontend."),
    admin: bool = typer.Option(False, "--admin", help="Allow admin operations (train, promote, rollback)."),
) -> None:
    """Create a key and print it once; only its hash is stored."""
    with bad_input_exits(ApiKeyError):
        key = create_key(ready_engine(ctx), name, admin=admin)
    console.print(f"created {'admin ' if admin else ''}key {name!r}; store it now, it is not shown again:")
    console.print(key, highlight=False, soft_wrap=True)


@app.command("revoke")
def revoke(ctx: typer.Context, name: str = typer.Argument(..., help="Name of the key to revoke.")) -> None:
    """Revoke a key; every replica refuses it from the next request on."""
    with bad_input_exits(ApiKeyError):
        revoke_key(ready_engine(ctx), name)
    console.print(f"revoked key {name!r}")


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List keys (name, prefix, admin, created, revoked); never the keys themselves."""
    table = Table("name", "prefix", "admin", "created", "revoked", title="API keys")
    for k in list_keys(ready_engine(ctx)):
        table.add_row(k.name, k.prefix + "...", "yes" if k.is_admin else "", f"{k.created_at:%Y-%m-%d %H:%M}",
                      f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "")
    console.print(table)
