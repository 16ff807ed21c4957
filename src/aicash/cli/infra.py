"""`aicash infra`: what the Pulumi program would create, without a cluster.

The program is the `infra` package of the wheel (it needs the `infra` extra), imported only when the command runs;
the stack configuration (`Pulumi.<stack>.yaml`) is read from the Pulumi project: the working folder or the nearest
folder above it with a `Pulumi.yaml`, as the Pulumi CLI finds it.
"""

from __future__ import annotations

from pathlib import Path

import typer

from aicash.cli.common import console, fail

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
    root = pulumi_project()
    from infra import render as renderer

    try:
        result = renderer.render(stack, out, root=root, overrides=overrides)
    except ValueError as exc:
        fail(str(exc))
    console.print(f"wrote {len(result.files)} objects of stack [bold]{stack}[/] to {out}")
    for item in result.not_expanded:
        console.print(f"  not expanded offline (applied by `pulumi up`): {item}", highlight=False, soft_wrap=True)


def pulumi_project() -> Path:
    """The Pulumi project folder: the working folder or the nearest one above it holding `Pulumi.yaml`."""
    for folder in [Path.cwd(), *Path.cwd().parents]:
        if (folder / "Pulumi.yaml").is_file():
            return folder
    fail("no Pulumi project here: run it in the folder with Pulumi.yaml and Pulumi.<stack>.yaml (or below it)")
