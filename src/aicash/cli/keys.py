"""`aicash keys`: API keys for the inference service."""

from __future__ import annotations

import typer
from rich.table import Table

from aicash.cli.common import bad_input_exits, console, settings_of
from aicash.cli.db import ready_engine
from aicash.registry import store_for
from aicash.serving.key_snapshot import SNAPSHOT_KEY, publish_key_snapshot
from aicash.serving.keys import ApiKeyError, create_key, list_keys, revoke_key

app = typer.Typer(no_args_is_help=True)


@app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Who the key is for, e.g. frontend."),
    admin: bool = typer.Option(False, "--admin", help="Allow admin operations (train, promote, rollback)."),
) -> None:
    """Create a key and print it once; only its hash is stored."""
    engine = ready_engine(ctx)
    with bad_input_exits(ApiKeyError):
        key = create_key(engine, name, admin=admin)
    console.print(f"created {'admin ' if admin else ''}key {name!r}; store it now, it is not shown again:")
    console.print(key, highlight=False, soft_wrap=True)
    _publish_snapshot(ctx, engine)


@app.command("revoke")
def revoke(ctx: typer.Context, name: str = typer.Argument(..., help="Name of the key to revoke.")) -> None:
    """Revoke a key; every replica refuses it within a second (its in-memory key set is re-read every 0.5 s)."""
    engine = ready_engine(ctx)
    with bad_input_exits(ApiKeyError):
        revoke_key(engine, name)
    console.print(f"revoked key {name!r}")
    _publish_snapshot(ctx, engine)


def _publish_snapshot(ctx: typer.Context, engine) -> None:  # type: ignore[no-untyped-def]
    """Rewrite the key snapshot the service falls back on while the database is down; the change itself is
    already in the database, so a failure here is a warning (the services rewrite it when they start)."""
    store = store_for(settings_of(ctx))
    try:
        publish_key_snapshot(engine, store)
    except Exception as exc:
        console.print(f"[yellow]warning:[/] the key snapshot ({SNAPSHOT_KEY} in the artifact store) was not updated: "
                      f"{type(exc).__name__}: {exc}. It is used only while the database is down; any service "
                      "rewrites it when it starts.", highlight=False)


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List keys (name, prefix, admin, created, revoked); never the keys themselves."""
    table = Table("name", "prefix", "admin", "created", "revoked", title="API keys")
    for k in list_keys(ready_engine(ctx)):
        table.add_row(k.name, k.prefix + "...", "yes" if k.is_admin else "", f"{k.created_at:%Y-%m-%d %H:%M}",
                      f"{k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "")
    console.print(table)
