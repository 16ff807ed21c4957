"""The inference service in cluster mode, on a PostgreSQL of the test's: the home prepared there, `aicash serve`
started and its process group stopped, and small waits."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from loadtest.run import stop_group
from tests.support.service import environment, home_env, launch_service, prepare_service_home


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {seconds:.0f} s"
        time.sleep(0.2)


def cluster_home(home: Path, database_url: str, **extra: str) -> tuple[dict[str, str], str, str]:
    """The service's environment in cluster mode on `database_url`, and the home prepared there (migrations,
    candles, Feast on PostgreSQL, two registered versions): (env, production, canary)."""
    env = home_env(home, {"DATABASE_URL": database_url, "REGISTRY_RELOAD_SECONDS": "1",
                          "RATE_LIMIT_PER_MINUTE": "100000", **extra})
    with environment(env):
        production, canary = prepare_service_home(home)
    return env, production, canary


@contextmanager
def serving(home: Path, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`aicash serve` on a free port in its own process group; the whole group is stopped afterwards."""
    running = launch_service(home, env)
    try:
        yield running.proc, running.url
    finally:
        stop_group(running.proc)


def ready(url: str) -> bool:
    try:
        return httpx.get(url + "/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
