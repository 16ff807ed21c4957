"""`aicash db`: migrations and imports."""

from __future__ import annotations

from pathlib import Path

import typer
from alembic.util.exc import CommandError
from sqlalchemy import Engine

from aicash.cli.common import bad_input_exits, console, settings_of
from aicash.db import migrate
from aicash.db.engine import engine_for
from aicash.db.engine import ready_engine as engine_at_head
from aicash.market.validation import InputFileError

app = typer.Typer(no_args_is_help=True)


@app.command("upgrade")
def upgrade(ctx: typer.Context, revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Apply migrations up to REVISION (default: head)."""
    engine = engine_for(settings_of(ctx))
    with bad_input_exits(CommandError):
        migrate.upgrade(engine, revision)
    console.print(f"database at revision [bold]{migrate.current_revision(engine)}[/]")


@app.command("downgrade")
def downgrade(
    ctx: typer.Context, revision: str = typer.Argument(..., help="Target revision, e.g. -1 or base.")
) -> None:
    """Take migrations back to REVISION."""
    engine = engine_for(settings_of(ctx))
    with bad_input_exits(CommandError):
        migrate.downgrade(engine, revision)
    console.print(f"database at revision [bold]{migrate.current_revision(engine)}[/]")


@app.command("current")
def current(ctx: typer.Context) -> None:
    """Print the database's migration revision and the code's head."""
    engine = engine_for(settings_of(ctx))
    console.print(f"current: {migrate.current_revision(engine)}  head: {migrate.head_revision()}")


@app.command("import-trades")
def import_trades(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="Trade history as CSV, Parquet or JSON (records)."),
) -> None:
    """Import a trade history, validated like candles; all or nothing."""
    from aicash.trades import import_trades as run_import

    engine = ready_engine(ctx)
    with bad_input_exits(InputFileError):
        count = run_import(engine, path)
    console.print(f"imported {count} trades from {path}")


def ready_engine(ctx: typer.Context) -> Engine:
    """The engine with its schema at head (`aicash.db.engine.ready_engine`); an out-of-date schema exits 2."""
    with bad_input_exits(migrate.SchemaOutOfDateError):
        return engine_at_head(settings_of(ctx))
