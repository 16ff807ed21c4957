"""`make loadtest`: load-test the inference service on the registry's production model and check the targets.

Against the settings in force (AICASH_HOME, DATABASE_URL; `make demo` leaves a served model there) it:

1. checks that the registry has a production model (exit 2 with the command to fix it when not);
2. starts `aicash serve` on 127.0.0.1 (its own instance, with the per-key rate limit lifted so that the load
   is not answered with 429) and waits until it is ready;
3. creates a throw-away API key;
4. runs Locust headless (FastHttpUser, `loadtest/locustfile.py`) for a bounded time;
5. prints a table, writes Locust's HTML report and CSVs under `loadtest/reports/`;
6. stops the service and revokes the key, whatever happened.

Exit 0 when every target is met (p95: /predict < 200 ms, /health < 50 ms, /weights < 100 ms; no failed
request), 1 when one is missed, 2 when there is nothing to test. On two or more cores the service is pinned
to core 0 and Locust to core 1 (taskset): a load generator sharing the server's core distorts the figures.

    python -m loadtest.run --duration 60 --users 16
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from aicash.db.engine import engine_for
from aicash.model_input import MODEL_NAME
from aicash.registry import current_production
from aicash.serving.keys import create_key, revoke_key
from aicash.settings import Settings, load_settings

TARGETS_P95_MS = {"/predict": 200.0, "/health": 50.0, "/weights": 100.0}
HERE = Path(__file__).resolve().parent
REPO = HERE.parent
console = Console()


class NothingToTestError(RuntimeError):
    """No production model to serve: the load test would only measure errors."""


@dataclass(frozen=True)
class Check:
    """One endpoint's figures from Locust's CSV and whether its target is met."""

    endpoint: str
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    target_p95_ms: float

    @property
    def met(self) -> bool:
        return self.requests > 0 and self.failures == 0 and self.p95_ms < self.target_p95_ms


def pinned(cmd: list[str], core: int) -> list[str]:
    """`cmd` bound to one core when taskset exists and this process may use two or more cores."""
    if shutil.which("taskset") and len(os.sched_getaffinity(0)) > 1:
        return ["taskset", "-c", str(core), *cmd]
    return cmd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def production_version(settings: Settings) -> str:
    """The registry's production version; NothingToTestError with the fix when there is none."""
    hint = ("train and promote one first: `make demo`, or `aicash pipeline run lstm-training` then "
            "`aicash models promote VERSION --traffic 100`")
    if settings.mode == "local" and not (settings.aicash_home / "aicash.db").exists():
        raise NothingToTestError(f"no aicash database under AICASH_HOME={settings.aicash_home}: {hint}")
    engine = engine_for(settings)
    try:
        record = current_production(engine, MODEL_NAME)
    except Exception as exc:  # no schema, database unreachable
        raise NothingToTestError(f"cannot read the model registry ({type(exc).__name__}): {hint}") from None
    finally:
        engine.dispose()
    if record is None:
        raise NothingToTestError(f"no production model in the registry at {settings.aicash_home}: {hint}")
    return record.version


@contextlib.contextmanager
def temporary_key(settings: Settings) -> Iterator[str]:
    """An API key for the run, revoked afterwards."""
    name = f"loadtest-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    engine = engine_for(settings)
    try:
        key = create_key(engine, name, actor="loadtest")
        try:
            yield key
        finally:
            revoke_key(engine, name, actor="loadtest")
    finally:
        engine.dispose()


@dataclass(frozen=True)
class Served:
    """A running service: its address and the process id of `aicash serve` (the root of its process tree)."""

    url: str
    pid: int


@contextlib.contextmanager
def service(port: int, env: dict[str, str], log: Path, timeout: float = 180.0) -> Iterator[Served]:
    """`aicash serve` on 127.0.0.1:PORT in its own process group; stopped (the whole group) afterwards."""
    url = f"http://127.0.0.1:{port}"
    cmd = pinned([str(Path(sys.executable).parent / "aicash"), "serve", "--port", str(port)], 0)
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,  # noqa: S603
                                start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while not _ready(url):
                if proc.poll() is not None:
                    raise RuntimeError(f"the service exited with code {proc.returncode}; see {log}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the service was not ready within {timeout:.0f} s; see {log}")
                time.sleep(0.3)
            yield Served(url, proc.pid)
        finally:
            stop_group(proc)


def service_env(settings: Settings) -> dict[str, str]:
    """The load-tested service's environment: this one, on the same home, with the per-key rate limit lifted (it
    would answer most of the load with 429)."""
    return os.environ | {"AICASH_HOME": str(settings.aicash_home), "FEAST_USAGE": "False",
                         "RATE_LIMIT_PER_MINUTE": str(10**9)}


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group `proc` leads (started with start_new_session=True), SIGKILL after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def run_locust(url: str, key: str, users: int, seconds: int, reports: Path, *, user_class: str = "FrontendUser",
               extra_args: Sequence[str] = (), extra_env: dict[str, str] | None = None) -> Path:
    """Locust headless for `seconds` with `users` of `user_class` (from the locustfile); returns the CSV prefix
    (`<prefix>_stats.csv` etc.)."""
    prefix = reports / "locust"
    cmd = [str(Path(sys.executable).parent / "locust"), "-f", str(HERE / "locustfile.py"), "--host", url,
           "--headless", "-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--csv", str(prefix),
           "--html", str(reports / "report.html"), "--only-summary", "--stop-timeout", "5", "--loglevel", "WARNING",
           *extra_args, user_class]
    env = os.environ | (extra_env or {}) | {"AICASH_API_KEY": key}
    with (reports / "locust.log").open("w") as log:
        subprocess.run(pinned(cmd, 1), env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,  # noqa: S603
                       check=False, timeout=seconds + 120)
    return prefix


def evaluate(stats_csv: Path, targets: dict[str, float] = TARGETS_P95_MS) -> list[Check]:
    """One Check per target endpoint from Locust's `<prefix>_stats.csv` (percentiles in ms, as Locust rounds them)."""
    with stats_csv.open() as fh:
        rows = {row["Name"]: row for row in csv.DictReader(fh)}
    checks = []
    for endpoint, target in targets.items():
        row = rows.get(endpoint)
        if row is None:
            checks.append(Check(endpoint, 0, 0, 0.0, 0.0, 0.0, 0.0, target))
            continue
        checks.append(Check(
            endpoint, int(row["Request Count"]), int(row["Failure Count"]), float(row["Requests/s"]),
            float(row["50%"]), float(row["95%"]), float(row["99%"]), target,
        ))
    return checks


def print_table(checks: Sequence[Check], title: str) -> None:
    table = Table(title=title)
    table.add_column("endpoint", no_wrap=True, min_width=8)
    for name in ("requests", "fails", "req/s", "p50", "p95", "p99", "p95 target", "met"):
        table.add_column(name, justify="right")
    for c in checks:
        verdict = "[green]yes[/]" if c.met else ("[red]none[/]" if not c.requests else "[red]no[/]")
        table.add_row(c.endpoint, str(c.requests), str(c.failures), f"{c.rps:.0f}", f"{c.p50_ms:.0f}",
                      f"{c.p95_ms:.0f}", f"{c.p99_ms:.0f}", f"< {c.target_p95_ms:.0f}", verdict)
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=60, help="seconds of load (default 60)")
    parser.add_argument("--users", type=int, default=16, help="concurrent Locust users (default 16)")
    parser.add_argument("--port", type=int, default=0, help="service port (default: a free one)")
    parser.add_argument("--reports", type=Path, default=HERE / "reports", help="folder for the HTML report and CSVs")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.users < 1:
        console.print("--duration and --users must be at least 1")
        return 2
    settings = load_settings()
    try:
        version = production_version(settings)
    except NothingToTestError as exc:
        console.print(f"[red]nothing to load-test:[/] {exc}", soft_wrap=True)
        return 2
    reports = args.reports.resolve()
    reports.mkdir(parents=True, exist_ok=True)
    port = args.port or free_port()
    env = service_env(settings)
    console.print(f"load-testing production model {version}: {args.users} users for {args.duration} s", soft_wrap=True)
    with temporary_key(settings) as key, service(port, env, reports / "service.log") as served:
        prefix = run_locust(served.url, key, args.users, args.duration, reports)
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        console.print(f"[red]Locust wrote no statistics; see {reports / 'locust.log'}[/]", soft_wrap=True)
        return 1
    checks = evaluate(stats)
    print_table(checks, "Locust load test (latencies in ms)")
    console.print(f"{args.users} users for {args.duration} s; raw percentiles, rounded to whole ms by Locust; "
                  f"HTML report: {reports / 'report.html'}; CSVs: {prefix}_*.csv", soft_wrap=True)
    return 0 if all(c.met for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
