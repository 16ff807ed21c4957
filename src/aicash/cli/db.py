"""`aicash db`: migrations, imports and the connection test (`current`, `check`). An unreachable database is one
error naming it and exit code 2 (`aicash.cli.main.RootGroup`)."""

from __future__ import annotations

from pathlib import Path

import typer
from alembic.util.exc import CommandError
from sqlalchemy import Engine

from aicash.cli.common import bad_input_exits, console, settings_of
from aicash.db import migrate
from aicash.db.engine import check_connection, describe_database, engine_for
from aicash.db.engine import ready_engine as engine_at_head

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
    """Print the database's migration revision and the code's head (a connection test: exit 2 when unreachable)."""
    engine = engine_for(settings_of(ctx))
    console.print(f"current: {migrate.current_revision(engine)}  head: {migrate.head_revision()}")


@app.command("check")
def check(ctx: typer.Context) -> None:
    """Connection test: connect, time one round trip, print the schema revision; exit 2 when unreachable."""
    settings = settings_of(ctx)
    result = check_connection(engine_for(settings))
    head = migrate.head_revision()
    console.print(f"connected to {describe_database(settings.sqlalchemy_url)} in {result.connect_ms:.1f} ms; "
                  f"round trip (SELECT 1) {result.round_trip_ms:.1f} ms", highlight=False, soft_wrap=True)
    behind = "" if result.revision == head else f", not head {head}: run `aicash db upgrade`"
    console.print(f"schema revision: {result.revision or 'none'}{behind or ' (head)'}", highlight=False)


@app.command("grant-logins")
def grant_logins(ctx: typer.Context) -> None:
    """Create (or update) each workload's login in its role, from SERVING_DATABASE_URL, ADMIN_DATABASE_URL,
    TRAINING_DATABASE_URL, MONITORING_DATABASE_URL and READONLY_DATABASE_URL (those set); run as the owner after
    `aicash db upgrade`."""
    from aicash.db.logins import LoginError, grant_login, logins_from_env

    settings = settings_of(ctx)
    with bad_input_exits(LoginError):
        if settings.database_backend != "postgresql":
            raise LoginError("SQLite has no roles or logins: grant-logins needs a postgresql:// DATABASE_URL")
        logins = logins_from_env()
    engine = ready_engine(ctx)
    for login in logins:
        console.print(f"login {login.user} in {login.role}: {grant_login(engine, login)}", highlight=False)
    if not logins:
        console.print("no login URL set (SERVING_DATABASE_URL, ...): nothing to do", highlight=False)


@app.command("import-trades")
def import_trades(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="Trade history as CSV, Parquet or JSON (records)."),
) -> None:
    """Import a trade history, validated like candles; all or nothing."""
    from aicash.trades import import_trades as run_import

    engine = ready_engine(ctx)
    from aicash.market.validation import InputFileError  # pandas: only for the imports

    with bad_input_exits(InputFileError):
        count = run_import(engine, path)
    console.print(f"imported {count} trades from {path}")


def ready_engine(ctx: typer.Context) -> Engine:
    """The engine with its schema at head (`aicash.db.engine.ready_engine`); an out-of-date schema exits 2."""
    with bad_input_exits(migrate.SchemaOutOfDateError):
        return engine_at_head(settings_of(ctx))
