"""The attribution benchmark's parts: the CPU meter, its arithmetic, and its hosts answering over real HTTP (the
bare Starlette host and BentoML's floor, each through the service's runtime on a served home)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.attribution_hosts import Meter
from benchmarks.bench_attribution import attribution_rows, per_level
from tests.support.service import Running, Template, copy_home, start_service, stop_service

BENTOML = str(Path(sys.executable).parent / "bentoml")
HOSTS = {
    "bare": [sys.executable, "-m", "benchmarks.attribution_hosts", "--mode", "runtime"],
    "bentoml": [BENTOML, "serve", "benchmarks.bento_floor:RuntimeFloorService"],
}


def _burn(seconds: float) -> str:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
    return "done"


def test_the_meter_counts_calls_and_their_thread_cpu() -> None:
    meter = Meter()
    burn = meter.wrap(_burn)
    assert meter.reading() == {"calls": 0, "cpu_seconds": 0.0, "cpu_us_per_call": 0.0}
    assert burn(0.004) == "done" and burn(0.002) == "done"
    reading = meter.reading()
    assert reading["calls"] == 2
    assert 3000 <= reading["cpu_us_per_call"] < 6000  # (4 + 2) ms / 2 calls, and not the wall time of a sleep
    time.sleep(0.02)
    assert meter.reading()["cpu_us_per_call"] == reading["cpu_us_per_call"]


def _result(c: int, cpu: float, p99: float = 10.0) -> dict[str, float]:
    return {"concurrency": c, "cpu_ms_per_request": cpu, "p99_ms": p99}


def test_the_rows_split_the_service_above_the_floor_into_its_parts() -> None:
    results = {"bare constant": [_result(8, 0.10)], "bare + runtime": [_result(8, 0.45)],
               "floor": [_result(8, 0.80, 9.0)], "floor + runtime": [_result(8, 1.40, 27.0)],
               "service": [_result(8, 1.45, 27.9)]}
    readings = {  # cumulative, read after each level
        1: {"bare + runtime": {"predict_many": {"calls": 4, "cpu_seconds": 0.002}},
            "floor + runtime": {"predict_many": {"calls": 2, "cpu_seconds": 0.001}}},
        8: {"bare + runtime": {"predict_many": {"calls": 14, "cpu_seconds": 0.0048}},
            "floor + runtime": {"predict_many": {"calls": 7, "cpu_seconds": 0.00335}}},
    }
    meters = per_level(readings)
    assert meters["bare + runtime"][1]["predict_many"] == {"calls": 4, "cpu_us_per_call": pytest.approx(500.0)}
    assert meters["floor + runtime"][8]["predict_many"] == {"calls": 5, "cpu_us_per_call": pytest.approx(470.0)}
    meters = {host: {8: levels[8]} for host, levels in meters.items()}
    rows = {r["benchmark"]: r["figure"] for r in attribution_rows(results, meters, {"warm": 65.0})}
    assert rows["our runtime above its host's constant, bare Starlette host, c=8"] == pytest.approx(0.35)
    assert rows["our runtime above its host's constant, under BentoML (floor + runtime - floor), c=8"] == \
        pytest.approx(0.60)
    assert rows["what running under BentoML adds to the same runtime, c=8"] == pytest.approx(0.25)
    assert rows["the service above floor + runtime (security middleware, mounted app, metrics), c=8"] == \
        pytest.approx(0.05)
    assert rows["the service above the floor, c=8"] == pytest.approx(0.65)
    assert rows["p99 c=8: floor / floor + runtime / service = 9.0 / 27.0 / 27.9 ms"] == pytest.approx(3.1)
    assert rows["predict_many, thread CPU per call, floor + runtime, c=8 (5 calls)"] == pytest.approx(470.0)
    assert rows["predict_many, thread CPU per call, bare + runtime, c=8 (10 calls)"] == pytest.approx(280.0)
    outside = "our runtime in the bare host outside predict_many (log writer, reloads, thread hand-offs, caches), c=8"
    assert rows[outside] == pytest.approx(0.35 - 0.28)
    assert rows["forward pass, thread CPU per call, in-process, warm"] == 65.0


@pytest.fixture(scope="module", params=sorted(HOSTS))
def host(request: pytest.FixtureRequest, template: Template, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Running]:
    home = copy_home(template, tmp_path_factory.mktemp(f"attribution-{request.param}") / "home")
    running = start_service(home, command=HOSTS[request.param])
    yield running
    stop_service(running)


def test_a_runtime_host_answers_through_the_runtime_and_meters_it(host: Running) -> None:
    import httpx

    versions = set()
    for i in range(12):  # the template serves an LSTM and a 30 % LightGBM canary: both are metered
        body = {"symbol": "EURUSD", "indicators": {"rsi_value": 40.0 + i}, "request_id": f"attribution-{i}"}
        answer = httpx.post(f"{host.url}/predict", json=body, timeout=30)  # each a cache miss: its own indicators
        assert answer.status_code == 200, answer.text
        assert answer.json()["signal"] in {"BUY", "SELL", "HOLD"}
        versions.add(answer.json()["model_version"])
    assert len(versions) == 2  # these request ids reach both
    meters = httpx.post(f"{host.url}/meters", json={}, timeout=30).json()
    assert meters["predict_many"]["calls"] == 12
    assert meters["forward pass"]["calls"] == 12
    assert 0 < meters["forward pass"]["cpu_us_per_call"] < meters["predict_many"]["cpu_us_per_call"]
    again = httpx.post(f"{host.url}/predict", json=body, timeout=30)  # the last request again: from the cache
    assert again.json()["cached"] is True
    meters = httpx.post(f"{host.url}/meters", json={}, timeout=30).json()
    assert (meters["predict_many"]["calls"], meters["forward pass"]["calls"]) == (13, 12)
