"""`aicash serve`: the BentoML inference service, locally; `--build` packages it as a Bento."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

from aicash.cli.common import bad_input_exits, console, repo_root, settings_of

app = typer.Typer()


@app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    port: int = typer.Option(3000, "--port", min=1, max=65535, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    build: bool = typer.Option(False, "--build", help="Package the production model and build the Bento instead."),
    version: str | None = typer.Option(None, "--version", help="With --build: the version to package."),
) -> None:
    """Serve the registry's production (and canary) model with `bentoml serve` on HOST:PORT."""
    root = repo_root()
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
    bindir = Path(sys.executable).parent
    if build:
        sys.path.insert(0, str(root))
        from bentos.package import NothingToPackageError, export_model

        with bad_input_exits(NothingToPackageError, LookupError):
            tag = export_model(settings_of(ctx), version)
        console.print(f"packaged {tag} into BentoML's model store")
        subprocess.run([str(bindir / "pip"), "wheel", "--no-deps", "-q", "-w", "dist", "."],  # noqa: S603
                       cwd=root, check=True)
        subprocess.run([str(bindir / "bentoml"), "build", "-f", "bentos/bentofile.yaml", "."],  # noqa: S603
                       cwd=root, env=env, check=True)
        return
    cmd = [str(bindir / "bentoml"), "serve", "bentos.service:SignalService", "--host", host, "--port", f"{port}"]
    console.print(f"serving on http://{host}:{port} (Swagger UI at /, OpenAPI at /docs.json)")
    os.execve(cmd[0], cmd, env | {"AICASH_HOME": str(settings_of(ctx).aicash_home)})  # noqa: S606
