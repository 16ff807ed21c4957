"""The everyday commands import no heavy tool: `aicash --help`, `models list`, `data list` and `config show` leave
torch, Feast, KFP, BentoML and Evidently unimported (and pandas where the command has no use for it). Each runs in
a fresh interpreter, as a user would run it; the time itself is measured by `python -m benchmarks cli`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = frozenset({"torch", "feast", "kfp", "bentoml", "evidently", "pandas", "alembic", "boto3"})
PROBE = """
import atexit, json, sys
heavy = set(json.loads(sys.argv[1]))
atexit.register(lambda: print("IMPORTED " + json.dumps(sorted({m.split(".")[0] for m in sys.modules} & heavy)),
                              file=sys.stderr))
sys.argv = ["aicash", *sys.argv[2:]]
from aicash.cli.main import app
app()
"""
# What each command still needs: the database's schema check (alembic); `config show` asks boto3 where the AWS
# credentials come from.
NEEDED: dict[tuple[str, ...], set[str]] = {
    ("--help",): set(),
    ("models", "list"): {"alembic"},
    ("data", "list"): {"alembic"},
    ("config", "show"): {"boto3"},
}


def imported_by(args: tuple[str, ...], home: Path) -> set[str]:
    env = {"AICASH_HOME": str(home), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(sorted(HEAVY)), *args],  # noqa: S603
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stderr.splitlines() if line.startswith("IMPORTED "))
    return set(json.loads(line.removeprefix("IMPORTED ")))


@pytest.mark.parametrize("args", list(NEEDED), ids=[" ".join(a) for a in NEEDED])
def test_an_everyday_command_imports_no_heavy_tool(args: tuple[str, ...], tmp_path: Path) -> None:
    assert imported_by(args, tmp_path / "home") == NEEDED[args]


def test_a_command_that_needs_a_tool_still_gets_it(tmp_path: Path) -> None:
    """The groups are mounted when named: `pipeline compile --help` loads the pipeline group (not KFP yet)."""
    assert "kfp" not in imported_by(("pipeline", "compile", "--help"), tmp_path / "home")
