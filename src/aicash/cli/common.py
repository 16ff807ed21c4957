"""Helpers shared by the CLI's command groups: settings from the context, bad-input exits, tables."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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


def import_pipelines() -> None:
    """Make `pipelines` importable: from PYTHONPATH where the platform image puts /app (pipelines/ and features/,
    no Pulumi.yaml), else from the checkout."""
    try:
        import pipelines  # noqa: F401
    except ImportError:
        root = str(repo_root())
        if root not in sys.path:
            sys.path.insert(0, root)


def repo_root() -> Path:
    """The checkout holding Pulumi.yaml, pipelines/ and bentos/: the current folder or one above it,
    else the one this package was installed from in editable mode."""
    for folder in [Path.cwd(), *Path.cwd().parents, *Path(__file__).resolve().parents]:
        if (folder / "Pulumi.yaml").is_file() and (folder / "pyproject.toml").is_file():
            return folder
    fail("this command needs an aicash checkout (a folder with Pulumi.yaml); run it from the repository")
