"""Serving figures: POST /predict of the BentoML service next to a bare Starlette endpoint running the same
TorchScript forward pass on the same model file, measured in the same run, with BentoML's own floor (the same
configuration and request schema answering a constant, `benchmarks/bento_floor.py`) between them.

For each server and each concurrency (1, 8, 32 keep-alive connections, closed loop): throughput and the raw
p50/p99 latency (no coordinated-omission correction) over a bounded period after a warm-up, and the server's
CPU time per request. Each server runs pinned to core 0 and the load generator (`benchmarks.loadgen`) to
core 1, so the generator does not steal the server's CPU. Every request carries distinct indicator values, so
none is answered from the service's cache.

Targets: the service reaches at least 70 % of the bare endpoint's throughput, with a p99 within 2x of it.

The service home is made like the HTTP tests': the EURUSD sample, materialized Feast features (local mode), one
registered model (the production architecture, trained for one epoch) at 100 %, and an API key, under a
temporary AICASH_HOME and BENTOML_HOME. The rate limit is lifted for the run.

Run: `python -m benchmarks serving` (BENCH_SERVING_SECONDS=10 measured seconds per level, 3 s warm-up).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

from benchmarks.common import Row, row
from loadtest.run import stop_group

REPO = Path(__file__).resolve().parents[1]
LEVELS = (1, 8, 32)
WARMUP_S = 3.0
THROUGHPUT_TARGET = 0.70
P99_TARGET = 2.0
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


def prepare_home(home: Path) -> tuple[str, Path, str]:
    """Candles, features and one registered model at 100 % under `home`; returns (version, artifacts, api key)."""
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

    settings = load_settings(aicash_home=home, database_url=f"sqlite:///{home / 'aicash.db'}")
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
    pythonpath = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env | {
        "AICASH_HOME": str(home), "BENTOML_HOME": str(home / "bentoml"), "FEAST_USAGE": "False",
        "RATE_LIMIT_PER_MINUTE": str(10**9), "PYTHONPATH": pythonpath, "BENTOML_DO_NOT_TRACK": "True",
    }


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
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def measure(server: psutil.Process, url: str, headers: list[str], seconds: float) -> list[dict[str, Any]]:
    """One load run per concurrency level against `url`; the load generator's figures plus server CPU/request."""
    results = []
    for concurrency in LEVELS:
        cmd = [sys.executable, "-m", "benchmarks.loadgen", "--url", url, "--concurrency", str(concurrency),
               "--duration", str(seconds), "--warmup", str(WARMUP_S), "--body", BODY]
        for header in headers:
            cmd += ["--header", header]
        cpu_before = _tree_cpu_seconds(server)
        out = subprocess.run(_pinned(cmd, 1), cwd=REPO, capture_output=True, text=True,  # noqa: S603
                             timeout=WARMUP_S + seconds + 60, check=True)
        cpu = _tree_cpu_seconds(server) - cpu_before
        result = json.loads(out.stdout)
        result["cpu_ms_per_request"] = cpu * 1000.0 / max(result["total_requests"], 1)
        results.append(result)
    return results


def run_servers(seconds: float) -> dict[str, list[dict[str, Any]]]:
    """Measures the bare endpoint, BentoML's floor (constant answer) and the service, one after the other."""
    results: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="aicash-bench-serving-") as folder:
        home = Path(folder)
        _, artifacts, key = prepare_home(home)
        env = service_env(home)
        bindir = Path(sys.executable).parent
        servers = {
            "bare": ([sys.executable, "-m", "benchmarks.bare_server", "--model", str(artifacts), "--port"], []),
            "floor": ([str(bindir / "bentoml"), "serve", "benchmarks.bento_floor:FloorService", "--host",
                       "127.0.0.1", "--port"], []),
            "service": ([str(bindir / "aicash"), "serve", "--port"], [f"X-API-Key: {key}"]),
        }
        for name, (cmd, headers) in servers.items():
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            with running(_pinned([*cmd, str(port)], 0), env, f"{url}/readyz", home / f"{name}.log") as proc:
                results[name] = measure(proc, f"{url}/predict", headers, seconds)
    return results


def rows_of(results: dict[str, list[dict[str, Any]]], load: tuple[float, float]) -> list[Row]:
    rows: list[Row] = [row("machine load average (1 min) at the start of the run", load[0], "runnable"),
                       row("machine load average (1 min) at the end of the run", load[1], "runnable")]
    labels = {"bare": "bare Starlette", "floor": "BentoML floor (constant answer)", "service": "BentoML service"}
    for name, label in labels.items():
        for r in results[name]:
            c = r["concurrency"]
            errors = f", {r['errors']} errors" if r["errors"] else ""
            rows.append(row(f"{label} c={c}: throughput{errors}", r["rps"], "req/s"))
            if name != "floor":
                rows += [row(f"{label} c={c}: p50 (raw)", r["p50_ms"], "ms"),
                         row(f"{label} c={c}: p99 (raw)", r["p99_ms"], "ms")]
            rows.append(row(f"{label} c={c}: server CPU per request", r["cpu_ms_per_request"], "ms"))
    for b, s in zip(results["bare"], results["service"], strict=True):
        c = b["concurrency"]
        share, p99_ratio = s["rps"] / b["rps"], s["p99_ms"] / b["p99_ms"]
        rows += [
            row(f"service / bare throughput, c={c}", share * 100, "%", f">= {THROUGHPUT_TARGET:.0%}",
                share >= THROUGHPUT_TARGET and s["errors"] == 0),
            row(f"service / bare p99, c={c}", p99_ratio, "x", f"<= {P99_TARGET:g}x", p99_ratio <= P99_TARGET),
        ]
    return rows


def run() -> list[Row]:
    seconds = float(os.environ.get("BENCH_SERVING_SECONDS", "10"))
    start_load = os.getloadavg()[0]
    results = run_servers(seconds)
    return rows_of(results, (start_load, os.getloadavg()[0]))


if __name__ == "__main__":
    for r in run():
        print(r)
