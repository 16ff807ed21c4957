"""`make loadtest`: start the service, run Locust headless for a bounded time, check the latency targets.

Prints a table, writes Locust's HTML report and CSVs under loadtest/reports/, exits 1 when a p95 target is
missed or any request failed. On 2 cores the service and Locust are pinned to different cores (taskset),
since a load generator sharing the server's core distorts the figures.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

TARGETS_P95_MS = {"/predict": 200.0, "/health": 50.0, "/weights": 100.0}
HERE = Path(__file__).resolve().parent
console = Console()


def pinned(cmd: list[str], core: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(core), *cmd]
    return cmd


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service exited with code {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the service was not ready within {timeout:.0f} s")


def create_key(aicash: str) -> str:
    name = f"loadtest-{int(time.time())}"
    out = subprocess.run([aicash, "keys", "create", name], capture_output=True, text=True, check=True)  # noqa: S603
    return out.stdout.strip().split()[-1]


def read_stats(prefix: Path) -> dict[str, dict[str, str]]:
    with Path(f"{prefix}_stats.csv").open() as fh:
        return {row["Name"]: row for row in csv.DictReader(fh)}


def report(stats: dict[str, dict[str, str]]) -> bool:
    table = Table("endpoint", "requests", "failures", "req/s", "p50 ms", "p95 ms", "p99 ms", "target p95", "met",
                  title="Locust (raw percentiles, rounded to ms by Locust)")
    ok = True
    for name, target in TARGETS_P95_MS.items():
        row = stats.get(name)
        if row is None:
            table.add_row(name, "0", "", "", "", "", "", f"< {target:.0f}", "[red]no requests[/]")
            ok = False
            continue
        p95, failures = float(row["95%"]), int(row["Failure Count"])
        met = p95 < target and failures == 0
        ok &= met
        table.add_row(name, row["Request Count"], str(failures), f"{float(row['Requests/s']):.0f}", row["50%"],
                      row["95%"], row["99%"], f"< {target:.0f}", "[green]yes[/]" if met else "[red]no[/]")
    console.print(table)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=3917)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--duration", default="60s", help="Locust run time, e.g. 60s")
    args = parser.parse_args()
    bindir = Path(sys.executable).parent
    aicash, locust = str(bindir / "aicash"), str(bindir / "locust")
    reports = HERE / "reports"
    reports.mkdir(exist_ok=True)
    url = f"http://127.0.0.1:{args.port}"
    server = subprocess.Popen(pinned([aicash, "serve", "--port", str(args.port)], 0))  # noqa: S603
    try:
        wait_ready(url, server)
        env = os.environ | {"AICASH_API_KEY": create_key(aicash)}
        prefix = reports / "locust"
        cmd = [locust, "-f", str(HERE / "locustfile.py"), "--host", url, "--headless", "-u", str(args.users),
               "-r", str(args.users), "-t", args.duration, "--csv", str(prefix), "--html", str(reports / "report.html"),
               "--only-summary", "--stop-timeout", "5"]
        subprocess.run(pinned(cmd, 1), env=env, check=False, timeout=3600)  # noqa: S603
        ok = report(read_stats(prefix))
        console.print(f"HTML report: {reports / 'report.html'}")
        return 0 if ok else 1
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    sys.exit(main())
