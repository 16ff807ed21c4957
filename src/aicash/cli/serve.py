"""`aicash serve`: the BentoML inference service, locally; `--build` packages it as a Bento."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

from aicash.cli.common import bad_input_exits, console, fail, settings_of

app = typer.Typer()

SERVICE = "bentos.service:SignalService"  # in the installed wheel, wherever it is installed
BENTOFILE = Path("bentos") / "bentofile.yaml"


@app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    port: int = typer.Option(3000, "--port", min=1, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    build: bool = typer.Option(False, "--build", help="Package the production model and build the Bento instead "
                                                      "(from the project folder: it builds the aicash wheel)."),
    version: str | None = typer.Option(None, "--version", help="With --build: the version to package."),
) -> None:
    """Serve the registry's production (and canary) model with `bentoml serve` on HOST:PORT."""
    bindir = Path(sys.executable).parent
    if build:
        _build(ctx, bindir, version)
        return
    cmd = [str(bindir / "bentoml"), "serve", SERVICE, "--host", host, "--port", f"{port}"]
    console.print(f"serving on http://{host}:{port} (Swagger UI at /, OpenAPI at /docs.json)")
    os.execve(cmd[0], cmd, os.environ | {"AICASH_HOME": str(settings_of(ctx).aicash_home)})  # noqa: S606


def _build(ctx: typer.Context, bindir: Path, version: str | None) -> None:
    """Export the model into BentoML's store, build the aicash wheel from the project folder, `bentoml build`."""
    if not (Path("pyproject.toml").is_file() and BENTOFILE.is_file()):
        fail(f"--build builds the aicash wheel and the Bento from the project's source: run it in the project folder "
             f"(the one with pyproject.toml and {BENTOFILE})")
    from bentos.package import NothingToPackageError, export_model

    with bad_input_exits(NothingToPackageError, LookupError):
        tag = export_model(settings_of(ctx), version)
    console.print(f"packaged {tag} into BentoML's model store")
    subprocess.run([str(bindir / "pip"), "wheel", "--no-deps", "-q", "-w", "dist", "."], check=True)  # noqa: S603
    subprocess.run([str(bindir / "bentoml"), "build", "-f", str(BENTOFILE), "."], check=True)  # noqa: S603
