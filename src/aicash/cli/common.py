"""Helpers shared by the CLI's command groups: settings from the context, bad-input exits, tables."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.text import Text

from aicash.settings import Settings

console = Console()
err_console = Console(stderr=True)

BAD_INPUT = 2


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the root command read once at start."""
    return ctx.find_root().obj["settings"]


def fail(message: str, code: int = BAD_INPUT) -> NoReturn:
    """Print a clear error to stderr and exit (2 = bad input)."""
    # The message may quote a user's cell or path verbatim (`[/x]`): it is printed as text, never as markup.
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def bad_input_exits(*errors: type[BaseException]) -> Iterator[None]:
    """Turn the given domain errors into exit code 2 with their message, never a traceback."""
    try:
        yield
    except errors as exc:
        fail(str(exc))
