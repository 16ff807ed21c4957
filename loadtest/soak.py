"""`make soak`: hold the inference service under a steady load for a bounded time and watch it for decay.

Against the settings in force (a production model in the registry, as `make demo` leaves it) it starts its own
`aicash serve` on 127.0.0.1, runs Locust headless at a steady total rate (`SteadyFrontendUser`: the frontend's
request mix at `--rate` requests/s over `--users` users), samples the resident memory of the service's whole
process tree every `--sample-seconds`, and reports:

- the error rate (target 0: any failed request fails the soak);
- p95/p99 over time, per interval (the worst of Locust's 10-second windows in each interval); target: p99 at most
  twice p95 in every interval (a longer tail means pauses: the collector, a background job holding the GIL);
- resident memory at the start (after `--warmup` seconds of load, once lazy allocations are done) and at the end
  (target: growth under 2%: more is taken for a leak).

Writes `soak.png` (latency and memory over time), Locust's HTML report and CSVs, and `memory.csv` under
`--reports`. Exit 0 when both targets are met, 1 when one is missed, 2 when there is nothing to test.

    python -m loadtest.soak --duration 600 --rate 50 --users 8
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil
from rich.table import Table

from loadtest.run import (
    HERE,
    NothingToTestError,
    console,
    free_port,
    production_version,
    run_locust,
    service,
    service_env,
    temporary_key,
)

MAX_ERROR_RATE = 0.0
MAX_MEMORY_GROWTH = 0.02
MAX_TAIL_RATIO = 2.0  # p99 / p95 in every interval


@dataclass(frozen=True)
class HistoryRow:
    """One second of Locust's aggregated history: the current 10-second window's percentiles, running totals."""

    timestamp: float
    rps: float
    p95_ms: float
    p99_ms: float
    total_requests: int
    total_failures: int


@dataclass(frozen=True)
class MemorySample:
    timestamp: float
    rss_bytes: int


@dataclass(frozen=True)
class Interval:
    """A slice of the run: requests and failures in it, its worst p95/p99 window, memory at its end."""

    start_s: float
    end_s: float
    requests: int
    failures: int
    p95_ms: float
    p99_ms: float
    rss_mb: float | None

    @property
    def tail_ratio(self) -> float:
        """p99 / p95 of the interval (its worst windows); infinite when p95 is 0 and p99 is not."""
        if self.p95_ms <= 0:
            return 1.0 if self.p99_ms <= 0 else float("inf")
        return self.p99_ms / self.p95_ms

    @property
    def tail_met(self) -> bool:
        return self.tail_ratio <= MAX_TAIL_RATIO


@dataclass(frozen=True)
class SoakResult:
    requests: int
    failures: int
    rss_start_mb: float
    rss_end_mb: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 1.0

    @property
    def memory_growth(self) -> float:
        return (self.rss_end_mb - self.rss_start_mb) / self.rss_start_mb

    @property
    def met(self) -> bool:
        return self.requests > 0 and self.error_rate <= MAX_ERROR_RATE and self.memory_growth < MAX_MEMORY_GROWTH


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (BentoML's arbiter and workers)."""
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.NoSuchProcess:  # a worker that just exited
            continue
    return total


class MemorySampler(threading.Thread):
    """Samples `tree_rss(pid)` every `interval` seconds until `stop()`."""

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(name="soak-memory", daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[MemorySample] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while True:
            try:
                self.samples.append(MemorySample(time.time(), tree_rss(self.pid)))
            except psutil.NoSuchProcess:
                return
            if self._halt.wait(self.interval):
                return

    def stop(self) -> list[MemorySample]:
        self._halt.set()
        self.join(self.interval + 5)
        return self.samples


def read_history(path: Path) -> list[HistoryRow]:
    """The `Aggregated` rows of Locust's `<prefix>_stats_history.csv` (written with `--csv-full-history`)."""
    rows = []
    with path.open() as fh:
        for row in csv.DictReader(fh):
            if row["Name"] != "Aggregated":
                continue
            rows.append(HistoryRow(
                float(row["Timestamp"]), float(row["Requests/s"]), _number(row["95%"]), _number(row["99%"]),
                int(row["Total Request Count"]), int(row["Total Failure Count"]),
            ))
    return rows


def _number(text: str) -> float:
    return 0.0 if text in {"", "N/A"} else float(text)


def intervals(history: Sequence[HistoryRow], memory: Sequence[MemorySample], width_s: float) -> list[Interval]:
    """The run cut into slices of `width_s` seconds from its first history row."""
    if not history:
        return []
    t0, out = history[0].timestamp, []
    previous = HistoryRow(t0, 0.0, 0.0, 0.0, 0, 0)
    start = t0
    while start <= history[-1].timestamp:
        end = start + width_s
        rows = [r for r in history if start <= r.timestamp < end]
        if rows:
            last = rows[-1]
            rss = [m.rss_bytes for m in memory if m.timestamp < end]
            out.append(Interval(
                start - t0, min(end, last.timestamp + 1) - t0,
                last.total_requests - previous.total_requests, last.total_failures - previous.total_failures,
                max(r.p95_ms for r in rows), max(r.p99_ms for r in rows), rss[-1] / 2**20 if rss else None,
            ))
            previous = last
        start = end
    return out


def summarize(history: Sequence[HistoryRow], memory: Sequence[MemorySample], warmup_s: float) -> SoakResult:
    """Totals from the last history row; memory at `warmup_s` after the first request and at the end of the load."""
    if not history or not memory:
        raise ValueError("no load history or no memory samples: the run produced nothing to judge")
    t0, t_end = history[0].timestamp, history[-1].timestamp
    during = [m for m in memory if m.timestamp <= t_end + 1] or list(memory)
    warm = [m for m in during if m.timestamp >= t0 + warmup_s] or during[-1:]
    start = warm[0].rss_bytes
    end = statistics.median(m.rss_bytes for m in during[-3:])  # a single sample can catch a transient
    return SoakResult(history[-1].total_requests, history[-1].total_failures, start / 2**20, end / 2**20)


def plot(history: Sequence[HistoryRow], memory: Sequence[MemorySample], out: Path) -> Path:
    """soak.png: p95/p99 (Locust's 10-second windows) and the service's resident memory over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = history[0].timestamp
    fig, (lat, mem) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    lat.plot([r.timestamp - t0 for r in history], [r.p95_ms for r in history], label="p95")
    lat.plot([r.timestamp - t0 for r in history], [r.p99_ms for r in history], label="p99")
    lat.set_ylabel("latency (ms)")
    lat.set_title("soak: all endpoints, Locust's 10-second windows")
    lat.legend()
    mem.plot([m.timestamp - t0 for m in memory], [m.rss_bytes / 2**20 for m in memory], color="tab:green")
    mem.set_ylabel("service RSS (MiB)")
    mem.set_xlabel("seconds since the first request")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def write_memory(samples: Sequence[MemorySample], path: Path) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "rss_bytes"])
        writer.writerows((f"{m.timestamp:.3f}", m.rss_bytes) for m in samples)


def met(result: SoakResult, slices: Sequence[Interval]) -> bool:
    """Every target: no error, memory growth, and p99 within MAX_TAIL_RATIO x p95 in every interval."""
    return result.met and bool(slices) and all(s.tail_met for s in slices)


def print_report(slices: Sequence[Interval], result: SoakResult) -> None:
    table = Table(title="Soak: per interval (p95/p99: worst 10-second window, ms)")
    for name in ("from s", "to s", "requests", "failures", "p95", "p99", "p99/p95", "RSS MiB"):
        table.add_column(name, justify="right")
    for s in slices:
        ratio = f"{s.tail_ratio:.2f}" if s.tail_met else f"[red]{s.tail_ratio:.2f}[/]"
        table.add_row(f"{s.start_s:.0f}", f"{s.end_s:.0f}", str(s.requests), str(s.failures), f"{s.p95_ms:.0f}",
                      f"{s.p99_ms:.0f}", ratio, "" if s.rss_mb is None else f"{s.rss_mb:.0f}")
    console.print(table)
    verdict = Table(title="Soak: targets")
    for name in ("figure", "value", "target", "met"):
        verdict.add_column(name, justify="right")
    errors_ok = result.requests > 0 and result.error_rate <= MAX_ERROR_RATE
    verdict.add_row("error rate", f"{result.error_rate:.4%} ({result.failures}/{result.requests})", "0",
                    "[green]yes[/]" if errors_ok else "[red]no[/]")
    verdict.add_row("memory growth", f"{result.memory_growth:+.1%} ({result.rss_start_mb:.0f} -> "
                    f"{result.rss_end_mb:.0f} MiB)", f"< {MAX_MEMORY_GROWTH:.0%}",
                    "[green]yes[/]" if result.memory_growth < MAX_MEMORY_GROWTH else "[red]no[/]")
    worst = max(slices, key=lambda s: s.tail_ratio, default=None)
    verdict.add_row("p99 / p95, worst interval", "-" if worst is None else
                    f"{worst.tail_ratio:.2f} ({worst.p99_ms:.0f} / {worst.p95_ms:.0f} ms at {worst.start_s:.0f} s)",
                    f"<= {MAX_TAIL_RATIO:g}", "[green]yes[/]" if worst is not None and worst.tail_met else "[red]no[/]")
    console.print(verdict)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=600, help="seconds of load (default 600)")
    parser.add_argument("--rate", type=float, default=50.0, help="total requests per second (default 50)")
    parser.add_argument("--users", type=int, default=8, help="concurrent Locust users sharing the rate (default 8)")
    parser.add_argument("--warmup", type=float, default=30.0,
                        help="seconds of load before the starting memory is taken (default 30, at most a fifth "
                             "of --duration)")
    parser.add_argument("--sample-seconds", type=float, default=2.0, help="memory sampling period (default 2)")
    parser.add_argument("--interval", type=float, default=30.0, help="width of a table row in seconds (default 30)")
    parser.add_argument("--port", type=int, default=0, help="service port (default: a free one)")
    parser.add_argument("--reports", type=Path, default=HERE / "reports" / "soak", help="folder for the reports")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.users < 1 or args.rate <= 0 or args.sample_seconds <= 0 or args.interval <= 0:
        parser.error("--duration, --users, --rate, --sample-seconds and --interval must be positive")
    args.warmup = min(max(args.warmup, 0.0), args.duration / 5)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse's own exit: 2 on bad options
        return int(exc.code or 0)
    from aicash.settings import load_settings

    settings = load_settings()
    try:
        version = production_version(settings)
    except NothingToTestError as exc:
        console.print(f"[red]nothing to soak:[/] {exc}", soft_wrap=True)
        return 2
    reports = args.reports.resolve()
    reports.mkdir(parents=True, exist_ok=True)
    console.print(f"soaking production model {version}: {args.rate:g} req/s over {args.users} users for "
                  f"{args.duration} s", soft_wrap=True)
    with temporary_key(settings) as key, service(args.port or free_port(), service_env(settings),
                                                 reports / "service.log") as served:
        sampler = MemorySampler(served.pid, args.sample_seconds)
        sampler.start()
        try:
            prefix = run_locust(served.url, key, args.users, args.duration, reports, user_class="SteadyFrontendUser",
                                extra_args=["--csv-full-history"],
                                extra_env={"LOADTEST_RATE_PER_USER": f"{args.rate / args.users:.6f}"})
        finally:
            memory = sampler.stop()
    history_csv = Path(f"{prefix}_stats_history.csv")
    history = read_history(history_csv) if history_csv.exists() else []
    if not history or not memory:
        console.print(f"[red]the soak produced no figures; see {reports / 'locust.log'}[/]", soft_wrap=True)
        return 1
    write_memory(memory, reports / "memory.csv")
    result = summarize(history, memory, args.warmup)
    slices = intervals(history, memory, args.interval)
    print_report(slices, result)
    png = plot(history, memory, reports / "soak.png")
    console.print(f"{args.rate:g} req/s, {args.users} users, {args.duration} s; memory from {args.warmup:.0f} s in; "
                  f"raw percentiles, rounded to whole ms by Locust; plot: {png}; HTML report: "
                  f"{reports / 'report.html'}", soft_wrap=True)
    return 0 if met(result, slices) else 1


if __name__ == "__main__":
    sys.exit(main())
