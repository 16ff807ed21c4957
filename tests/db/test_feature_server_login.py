"""The feature server runs as in the cluster (infra/feature_server.py's command) as a login in aicash_serving: it
only reads Feast's registry and online store, so the serving role's SELECT suffices."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from infra.feature_server import SERVE
from tests.support.net import free_port
from tests.support.roles import login_url
from tests.support.service import Template, home_env


@pytest.mark.slow
def test_the_feature_server_serves_online_features_as_a_serving_login(copy: Template) -> None:
    port = free_port()
    bindir = str(Path(sys.executable).parent)  # the virtualenv's `aicash` and `feast`
    env = home_env(copy.home, {"DATABASE_URL": login_url(copy.database_url, "aicash_serving"),
                               "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"})
    command = SERVE.replace("--port 6566", f"--port {port}").replace("0.0.0.0", "127.0.0.1")  # noqa: S104
    server = subprocess.Popen(["sh", "-c", command], env=env, stdout=subprocess.PIPE,  # noqa: S603, S607
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        answer, deadline = None, time.monotonic() + 120
        while answer is None and time.monotonic() < deadline and server.poll() is None:
            try:
                answer = httpx.post(f"http://127.0.0.1:{port}/get-online-features", timeout=10, json={
                    "features": ["technical_indicators:rsi_value"],
                    "entities": {"symbol": ["EURUSD"], "timeframe": ["1h"]}})
            except httpx.TransportError:
                time.sleep(0.5)
        assert answer is not None, (server.stdout.read() if server.poll() is not None and server.stdout else b"")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        rsi = body["results"][body["metadata"]["feature_names"].index("rsi_value")]
        assert rsi["statuses"] == ["PRESENT"] and isinstance(rsi["values"][0], float)  # materialized, read as serving
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(30)
