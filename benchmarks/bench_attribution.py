"""Whose is the service's cost above BentoML's floor: the same runtime under a bare Starlette host and under BentoML.

Five servers over one benchmark home, measured in the serving benchmark's interleaved rounds (servers on core 0,
load on core 1; `benchmarks.bench_serving`):

- `bare constant`: Starlette on uvicorn doing what BentoML does around the service's /predict (the body validated
  with the request schema, the answer computed where the service computes it, `bentos.dispatch`, and serialised by
  pydantic), answering the floor's constant (`benchmarks.attribution_hosts`);
- `bare + runtime`: the same host answering through the service's `SignalRuntime` (features, forward pass,
  composite score, cache, prediction log), built as the service builds it;
- `floor`: BentoML's floor, the service's configuration answering the constant (`benchmarks.bento_floor`);
- `floor + runtime`: the floor answering through the same runtime (`RuntimeFloorService`);
- `service`: the inference service (security middleware, mounted FastAPI app, metrics on top).

The runtime hosts meter the thread CPU of each `predict_many` call and of each forward pass (POST /meters, read
after each concurrency level, so each level has its own figures and what the runtime costs outside its calls shows
as the rest of its cost per request); the forward pass is also timed in this process, warm (called in a loop) and
after 4 MB are read between calls (what a request's trip through a large framework does to the caches). So the
service's CPU above the floor splits into: our runtime's cost in a small host, what the same code costs more under
BentoML, and the service's own additions.

Run: `python -m benchmarks attribution` (BENCH_ATTRIBUTION_SECONDS=6 measured seconds per server and level,
BENCH_ATTRIBUTION_ROUNDS=3).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.bench_serving import _free_port, _pinned, interleaved, prepare_home, running, service_env
from benchmarks.common import Row, row

RUNTIME_HOSTS = ("bare + runtime", "floor + runtime")
STREAMED_BYTES = 4 * 1024 * 1024


def commands(key: str) -> dict[str, tuple[list[str], list[str]]]:
    """Each server's command (the port is appended) and the headers its requests need."""
    bindir = Path(sys.executable).parent

    def bare(mode: str) -> list[str]:
        return [sys.executable, "-m", "benchmarks.attribution_hosts", "--mode", mode, "--port"]

    def bento(service: str) -> list[str]:
        return [str(bindir / "bentoml"), "serve", f"benchmarks.bento_floor:{service}", "--host", "127.0.0.1", "--port"]

    return {
        "bare constant": (bare("constant"), []),
        "bare + runtime": (bare("runtime"), []),
        "floor": (bento("FloorService"), []),
        "floor + runtime": (bento("RuntimeFloorService"), []),
        "service": ([str(bindir / "aicash"), "serve", "--port"], [f"X-API-Key: {key}"]),
    }


def forward_pass_cost(artifacts: Path, calls: int = 2000) -> dict[str, float]:
    """Thread CPU of one forward pass of the served model (µs), one window repeated (an LSTM answers it by the last
    step: `aicash.training.last_step`), and of the full model behind it: called in a loop, and with 4 MB read
    between calls."""
    from bentos.wiring import serving_model

    model = serving_model(artifacts)
    window = np.random.default_rng(0).uniform(0.5, 1.5, (1, model.window_bars, len(model.features)))
    window = window.astype(np.float32)
    served: dict[str, Any] = {"": model.predict_proba}
    if (full := getattr(model.predict_windows, "full", None)) is not None:
        served["full model, "] = full
    other = np.ones(STREAMED_BYTES // 8)
    costs = {}
    for label, call in served.items():
        for name, between in (("warm", None), ("after 4 MB read", other.sum)):
            for _ in range(200):
                call(window)
            spent = 0.0
            for _ in range(calls):
                if between is not None:
                    between()
                start = time.thread_time()
                call(window)
                spent += time.thread_time() - start
            costs[label + name] = spent * 1e6 / calls
    return costs


def run_hosts(seconds: float, rounds: int) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any], dict[str, float]]:
    """The five servers' results, the runtime hosts' meters and the in-process forward pass costs."""
    with tempfile.TemporaryDirectory(prefix="aicash-bench-attribution-") as folder, ExitStack() as stack:
        home = Path(folder)
        _, artifacts, key = prepare_home(home)
        env = service_env(home) | {"RATE_LIMIT_BACKEND": "memory"}
        servers, urls = {}, {}
        for name, (cmd, headers) in commands(key).items():
            port = _free_port()
            urls[name] = url = f"http://127.0.0.1:{port}"
            log = home / f"{name.replace(' ', '')}.log"
            proc = stack.enter_context(running(_pinned([*cmd, str(port)], 0), env, f"{url}/readyz", log))
            servers[name] = (proc, f"{url}/predict", headers)
        readings: dict[int, dict[str, Any]] = {}

        def read_meters(concurrency: int) -> None:
            readings[concurrency] = {name: httpx.post(f"{urls[name]}/meters", json={}, timeout=10).json()
                                     for name in RUNTIME_HOSTS}

        results = interleaved(servers, seconds, rounds, home, after_level=read_meters)
        forward = forward_pass_cost(artifacts)
    return results, per_level(readings), forward


def per_level(readings: dict[int, dict[str, Any]]) -> dict[str, dict[int, dict[str, Any]]]:
    """Each host's meters over each concurrency level alone (the difference of the readings taken after each
    level, in the order the levels ran): {host: {concurrency: {part: {calls, cpu_us_per_call}}}}."""
    levels: dict[str, dict[int, dict[str, Any]]] = {}
    previous: dict[str, Any] = {}
    for concurrency, hosts in readings.items():
        for host, parts in hosts.items():
            before = previous.get(host, {})
            spent = {}
            for part, now in parts.items():
                calls = now["calls"] - before.get(part, {}).get("calls", 0)
                cpu = now["cpu_seconds"] - before.get(part, {}).get("cpu_seconds", 0.0)
                spent[part] = {"calls": calls, "cpu_us_per_call": cpu * 1e6 / calls if calls else 0.0}
            levels.setdefault(host, {})[concurrency] = spent
        previous = hosts
    return levels


def attribution_rows(results: dict[str, list[dict[str, Any]]], meters: dict[str, Any],
                     forward: dict[str, float]) -> list[Row]:
    """CPU per request of each part, per concurrency level; the meters' and the forward pass's µs per call."""
    rows: list[Row] = []
    names = ("bare constant", "bare + runtime", "floor", "floor + runtime", "service")
    for level in zip(*(results[name] for name in names), strict=True):
        by_name = dict(zip(names, level, strict=True))
        c = by_name["floor"]["concurrency"]
        cpu = {name: r["cpu_ms_per_request"] for name, r in by_name.items()}
        p99 = {name: r["p99_ms"] for name, r in by_name.items()}
        small_host = cpu["bare + runtime"] - cpu["bare constant"]
        under_bentoml = cpu["floor + runtime"] - cpu["floor"]
        rows += [
            row(f"server CPU per request, c={c}: {' / '.join(names)} = "
                f"{' / '.join(f'{cpu[name]:.2f}' for name in names)}", cpu["service"], "ms"),
            row(f"our runtime above its host's constant, bare Starlette host, c={c}", small_host, "ms"),
            row(f"our runtime above its host's constant, under BentoML (floor + runtime - floor), c={c}",
                under_bentoml, "ms"),
            row(f"what running under BentoML adds to the same runtime, c={c}", under_bentoml - small_host, "ms"),
            row(f"the service above floor + runtime (security middleware, mounted app, metrics), c={c}",
                cpu["service"] - cpu["floor + runtime"], "ms"),
            row(f"the service above the floor, c={c}", cpu["service"] - cpu["floor"], "ms"),
            row(f"p99 c={c}: floor / floor + runtime / service = {p99['floor']:.1f} / "
                f"{p99['floor + runtime']:.1f} / {p99['service']:.1f} ms", p99["service"] / p99["floor"], "x"),
        ]
        for host in RUNTIME_HOSTS:
            for part, reading in meters[host][c].items():
                rows.append(row(f"{part}, thread CPU per call, {host}, c={c} ({reading['calls']:,} calls)",
                                reading["cpu_us_per_call"], "µs"))
        inside = meters["bare + runtime"][c]["predict_many"]["cpu_us_per_call"] / 1000.0
        rows.append(row(f"our runtime in the bare host outside predict_many (log writer, reloads, thread hand-offs, "
                        f"caches), c={c}", small_host - inside, "ms"))
    for name, us in forward.items():
        rows.append(row(f"forward pass, thread CPU per call, in-process, {name}", us, "µs"))
    return rows


def run() -> list[Row]:
    seconds = float(os.environ.get("BENCH_ATTRIBUTION_SECONDS", "6"))
    rounds = int(os.environ.get("BENCH_ATTRIBUTION_ROUNDS", "3"))
    return attribution_rows(*run_hosts(seconds, rounds))


if __name__ == "__main__":
    for r in run():
        print(r)
