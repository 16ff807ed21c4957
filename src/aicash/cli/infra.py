"""`aicash infra`: what the Pulumi program would create, without a cluster.

The program lives in the checkout's `infra/` folder, not in this package (which imports no Pulumi):
the command finds the checkout, puts it on `sys.path` and imports `infra.render` only when it runs.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import typer

from aicash.cli.common import console, fail, repo_root

app = typer.Typer(no_args_is_help=True)

STACKS = ("dev", "prod")


def _overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--set expects KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


@app.command("render")
def render(
    stack: str = typer.Option(..., "--stack", help="Stack to render: dev or prod."),
    out: Path = typer.Option(..., "--out", help="Folder for the YAML files (created if missing)."),
    set_: list[str] = typer.Option(  # noqa: B006 - typer reads the default, never mutates it
        [], "--set", help="Override a plain config value, e.g. --set imageTag=0.2.0 (repeatable)."
    ),
) -> None:
    """Write every Kubernetes object of STACK as YAML, one file per object, secrets redacted.

    Runs the Pulumi program under Pulumi's mocks: no cluster, cloud account or Pulumi CLI is needed.
    """
    if stack not in STACKS:
        fail(f"unknown stack {stack!r}: choose one of {', '.join(STACKS)}")
    overrides = _overrides(set_)
    root = repo_root()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    renderer = importlib.import_module("infra.render")
    try:
        result = renderer.render(stack, out, root=root, overrides=overrides)
    except ValueError as exc:
        fail(str(exc))
    console.print(f"wrote {len(result.files)} objects of stack [bold]{stack}[/] to {out}")
    for item in result.not_expanded:
        console.print(f"  not expanded offline (applied by `pulumi up`): {item}", highlight=False, soft_wrap=True)
