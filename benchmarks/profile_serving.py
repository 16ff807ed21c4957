"""Where a prediction's CPU goes: py-spy samples the service's worker while the serving benchmark's load runs.

The service home is the serving benchmark's (`benchmarks.bench_serving.prepare_home`); the service is pinned to
core 0, the load generator and py-spy to core 1. py-spy samples every thread of the worker that is not idle
(`--nonblocking`, so sampling does not pause the worker) and writes the collapsed stacks (`--format raw`: one
line per stack, `frame;frame;... count`, the input of flamegraph.pl and speedscope). This module then sorts every
sample into one part of a request (the first part whose frame is on the stack, in the order of `PARTS`) and
prints the parts' shares and the functions with the most samples of their own.

    python -m benchmarks.profile_serving --concurrency 8 --seconds 20 --out profile/ [--server floor]
        [--database postgresql]

`--database postgresql` profiles the service in cluster mode, its home prepared on a PostgreSQL server as the
serving benchmark's `BENCH_SERVING_DATABASE=postgresql` prepares it.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path

import psutil

from benchmarks.bench_serving import (
    _free_port,
    _pinned,
    cluster_database,
    cluster_home,
    load_run,
    prepare_home,
    running,
    service_env,
)

# (part, frame pattern): a sample belongs to the first part one of whose patterns matches a frame on its stack.
PARTS: tuple[tuple[str, str], ...] = (
    ("forward pass (model)", r"predict_proba|predict_windows \(.*aicash/training"),
    ("API key check", r"verify \(.*aicash/serving/keys\.py"),
    ("rate limiter", r"acquire \(.*aicash/serving/ratelimit\.py"),
    ("online features", r"_merged_inputs|OnlineFeatureReader|online_features"),
    ("composite score", r"composite_scores"),
    ("prediction log (request thread)", r"_log \(.*aicash/serving/runtime\.py"),
    ("prediction log (writer thread)", r"aicash/serving/prediction_log\.py"),
    ("answer, cache key, routing", r"aicash/serving/runtime\.py"),
    ("service method (metrics, context)", r"bentos/service\.py"),
    ("security middleware", r"bentos/security\.py"),
    ("background threads (registry, process metrics)", r"_reload_loop|process_metrics|registry-reload"),
    ("BentoML API (parse, validate, serialize)", r"_bentoml_impl|bentoml/_internal|_bentoml_sdk"),
    ("OpenTelemetry", r"opentelemetry|\((trace|asgi|context|attributes)/__init__\.py|contextvars_context\.py"),
    ("HTTP server (uvicorn, httptools)", r"uvicorn|httptools|h11"),
    ("Starlette, anyio", r"starlette|anyio"),
    ("event loop (uvloop: sockets, callbacks)", r"asyncio|uvloop"),
)


IDLE = re.compile(r"^(Condition\.wait|Event\.wait|Thread\._wait_for_tstate_lock|select) \(")
_COMPILED = tuple((part, re.compile(pattern)) for part, pattern in PARTS)


def classify(stack: str) -> str:
    """The part of the innermost frame that names one (walking from the leaf to the root), so that a library
    called by our code counts as ours and the framework's entry point at the root does not swallow every sample;
    "idle" for a thread waiting on a lock or condition that py-spy sampled as busy."""
    frames = stack.split(";")
    if IDLE.match(frames[-1]):
        return "idle"
    for frame in reversed(frames):
        for part, pattern in _COMPILED:
            if pattern.search(frame):
                return part
    return "other"


def parse_raw(lines: Iterable[str]) -> Counter[str]:
    """Collapsed stacks (`frame;frame;... count`) as a Counter of stack -> samples."""
    stacks: Counter[str] = Counter()
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if stack and count.isdigit():
            stacks[stack] += int(count)
    return stacks


def summary(stacks: Counter[str], top: int = 25) -> str:
    parts: Counter[str] = Counter()
    own: Counter[str] = Counter()
    for stack, count in stacks.items():
        part = classify(stack)
        parts[part] += count
        if part != "idle":
            own[stack.rsplit(";", 1)[-1]] += count
    idle = parts.pop("idle", 0)
    total = sum(parts.values()) or 1
    lines = [f"{total} samples of the worker's busy threads ({idle} more of threads waiting, left out)", "",
             "| part of the request | share of samples |",
             "|---|---|"]
    lines += [f"| {part} | {count / total:.1%} |" for part, count in parts.most_common()]
    lines += ["", f"| function (own samples, top {top}) | share |", "|---|---|"]
    lines += [f"| `{frame[:110]}` | {count / total:.1%} |" for frame, count in own.most_common(top)]
    return "\n".join(lines)


def worker_of(root: psutil.Process) -> psutil.Process:
    """The BentoML worker (the process that answers): the busiest process of the tree during a short burst."""
    tree = [root, *root.children(recursive=True)]
    return max(tree, key=lambda p: p.cpu_times().user + p.cpu_times().system)


def profile(concurrency: int, seconds: float, rate: int, out: Path, server_name: str = "service",
            gil: bool = False, native: bool = False, database: str = "sqlite") -> str:
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="aicash-profile-") as folder, ExitStack() as stack:
        home = Path(folder)
        if database == "postgresql":
            key, env = cluster_home(home, stack.enter_context(cluster_database())[0])
        else:
            _, _, key = prepare_home(home)
            env = service_env(home)
        env["RATE_LIMIT_BACKEND"] = "memory"
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        bindir = Path(sys.executable).parent
        if server_name == "floor":
            cmd = [str(bindir / "bentoml"), "serve", "benchmarks.bento_floor:FloorService", "--host", "127.0.0.1"]
            headers = []
        else:
            cmd, headers = [str(bindir / "aicash"), "serve"], [f"X-API-Key: {key}"]
        with running(_pinned([*cmd, "--port", str(port)], 0), env, f"{url}/readyz", home / "service.log") as server:
            load_run(server, f"{url}/predict", headers, concurrency, 3.0, 1.0, home / "warm.npy")
            worker = worker_of(server)
            label = server_name if database == "sqlite" else f"{server_name}-{database}"
            raw = out / f"{label}-c{concurrency}.txt"
            spy = subprocess.Popen(_pinned([pyspy, "record", "--pid", str(worker.pid), "--rate", str(rate),  # noqa: S603
                                            "--duration", str(int(seconds)), "--threads",
                                            *(["--gil"] if gil else []),
                                            *(["--native"] if native else ["--nonblocking"]),
                                            "--format", "raw", "--output", str(raw)], 1),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(0.5)
            figures = load_run(server, f"{url}/predict", headers, concurrency, seconds, 0.0, home / "load.npy")
            _, err = spy.communicate(timeout=seconds + 60)
            if spy.returncode != 0:
                raise RuntimeError(f"py-spy failed: {err.decode()[-2000:]}")
    cpu = figures["cpu_seconds"] * 1000 / max(figures["total_requests"], 1)
    head = (f"{label} c={concurrency}: {figures['rps']:.0f} req/s, {cpu:.2f} ms of server CPU per request "
            f"(under py-spy at {rate} samples/s), p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms")
    text = head + "\n\n" + summary(parse_raw(raw.read_text().splitlines()))
    (out / f"{label}-c{concurrency}.md").write_text(text + "\n")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--server", choices=("service", "floor"), default="service",
                        help="the service, or BentoML's floor (benchmarks/bento_floor.py) to compare with")
    parser.add_argument("--gil", action="store_true",
                        help="only the thread holding the GIL (leaves out threads waiting for it)")
    parser.add_argument("--native", action="store_true",
                        help="C frames too (py-spy then pauses the worker for every sample: use a low --rate)")
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite",
                        help="the service's database: the home's SQLite (local mode) or PostgreSQL (cluster mode)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/profile"))
    args = parser.parse_args()
    print(profile(args.concurrency, args.seconds, args.rate, args.out, args.server, args.gil, args.native,
                  args.database))


if __name__ == "__main__":
    main()
