"""`python -m benchmarks [NAME ...]`: run the benchmarks and print one table of figures."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

# Each module exposes run() -> list of rows; later areas add theirs here.
MODULES = ("cli", "foundation", "sources", "features", "training", "search", "pipeline", "serving", "attribution",
           "monitoring")


def main(names: list[str]) -> int:
    console = Console()
    table = Table("benchmark", "figure", "unit", "target", "met", title="aicash benchmarks (this machine)")
    results = []
    for name in names or MODULES:
        try:
            module = importlib.import_module(f"benchmarks.bench_{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"benchmarks.bench_{name}":
                raise
            continue
        console.print(f"[bold]running {name} benchmarks...[/]")
        for r in module.run():
            results.append(r)
            met = {True: "[green]yes[/]", False: "[red]no[/]", None: ""}[r["met"]]
            table.add_row(r["benchmark"], f"{r['figure']:,.3g}" if r["figure"] < 1000 else f"{r['figure']:,.0f}",
                          r["unit"], r["target"], met)
    console.print(table)
    out = Path("benchmarks/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
