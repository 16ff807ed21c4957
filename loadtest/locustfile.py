"""Locust load test of the inference service with the frontend's real payloads.

Run it through the Makefile, which starts the service, creates an API key and checks the targets:

    make loadtest                       # 60 s, 16 users, HTML report under loadtest/reports/
    make soak                           # 5 minutes at a steady rate, error rate, p95/p99 over time, memory

or by hand against a running service (`aicash serve --port 3000`), naming the user class:

    AICASH_API_KEY=aic_... locust -f loadtest/locustfile.py --host http://127.0.0.1:3000 \
        --headless -u 16 -r 16 -t 60s --html loadtest/reports/report.html FrontendUser
"""

from __future__ import annotations

import itertools
import os
import random

from locust import FastHttpUser, between, constant_throughput, task

from aicash.serving.schemas import EXAMPLE_INPUT

SYMBOLS = [s for s in os.environ.get("LOADTEST_SYMBOLS", "EURUSD").split(",") if s]
_ids = itertools.count()


def frontend_payload(rng: random.Random) -> dict:
    """The frontend's request: a symbol and the latest bar's indicators, values varying like live data."""
    indicators = dict(EXAMPLE_INPUT["indicators"])
    indicators["rsi_value"] = round(rng.uniform(20, 80), 1)
    indicators["adx_value"] = round(rng.uniform(10, 50), 1)
    return {"symbol": rng.choice(SYMBOLS), "indicators": indicators}


class FrontendUser(FastHttpUser):
    """What the frontend does: mostly predictions, sometimes the weights, and the health probe."""

    wait_time = between(0.01, 0.05)

    def on_start(self) -> None:
        self.rng = random.Random(os.getpid())  # noqa: S311 - load shape, not security
        self.headers = {"X-API-Key": os.environ.get("AICASH_API_KEY", "")}

    @task(8)
    def predict(self) -> None:
        body = frontend_payload(self.rng) | {"request_id": f"load-{os.getpid()}-{next(_ids)}"}
        self.client.post("/predict", json=body, headers=self.headers, name="/predict")

    @task(1)
    def weights(self) -> None:
        self.client.get("/weights", headers=self.headers, name="/weights")

    @task(1)
    def health(self) -> None:
        self.client.get("/health", name="/health")


class SteadyFrontendUser(FrontendUser):
    """The same mix at a steady rate per user (`LOADTEST_RATE_PER_USER` tasks/s, default 5): `make soak`."""

    wait_time = constant_throughput(float(os.environ.get("LOADTEST_RATE_PER_USER", "5")))
