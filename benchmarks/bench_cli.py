"""How long the everyday commands take, process start to exit: `aicash --help`, `models list`, `data list`,
`config show` (median of several runs each, against a fresh AICASH_HOME that the first, untimed run sets up).

`python -m benchmarks cli`; the target is the issue's: each under 1 s on the 2-core development machine.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import Row, row

COMMANDS: tuple[tuple[str, ...], ...] = (("--help",), ("models", "list"), ("data", "list"), ("config", "show"))
RUNS = 7
TARGET_SECONDS = 1.0


def aicash_command() -> list[str]:
    """The installed `aicash` entry point next to this interpreter, else the CLI module run by this interpreter."""
    script = Path(sys.executable).with_name("aicash")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from aicash.cli.main import app; app()"]


def time_command(argv: list[str], env: dict[str, str], runs: int = RUNS) -> float:
    """The median wall time of `runs` runs of `argv`, start to exit, in seconds; a failing run raises."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True)  # noqa: S603 - our own entry point
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="aicash-bench-cli-") as home:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | {"AICASH_HOME": home}
        base = aicash_command()
        subprocess.run([*base, "models", "list"], env=env, check=True, capture_output=True)  # noqa: S603 - migrates
        rows = []
        for args in COMMANDS:
            seconds = time_command([*base, *args], env)
            rows.append(row(f"cli: aicash {' '.join(args)} (median of {RUNS}, start to exit)", seconds, "s",
                            f"< {TARGET_SECONDS:g} s", seconds < TARGET_SECONDS))
        return rows


if __name__ == "__main__":
    for r in run():
        print(f"{r['benchmark']}: {r['figure']:.3f} {r['unit']}")
