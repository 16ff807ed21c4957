"""Monitoring fixtures: a production model with a reference sample, logged predictions, a real SMTP server."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine

from aicash.db.models import Prediction, PredictionOutcome
from aicash.indicators import INDICATOR_COLUMNS
from aicash.registry import promote, register_model, store_for
from aicash.settings import Settings

# A plausible level and spread per indicator (EURUSD-like prices).
LEVELS: dict[str, tuple[float, float]] = {
    "rsi_value": (50, 10), "adx_value": (25, 8), "ema_12": (1.10, 0.02), "ema_26": (1.10, 0.02),
    "ema_50": (1.10, 0.02), "macd_line": (0.0, 0.001), "macd_signal": (0.0, 0.001), "macd_histogram": (0.0, 0.0004),
    "bb_upper": (1.11, 0.02), "bb_lower": (1.09, 0.02), "bb_percent_b": (0.5, 0.3), "atr_value": (0.002, 0.0005),
    "stoch_k": (50, 20), "stoch_d": (50, 18), "log_return": (0.0, 0.001), "volatility_20": (0.001, 0.0003),
}
# Out-of-sample confusion (rows true, columns predicted SELL/HOLD/BUY): the model predicts 30/40/30 %.
CONFUSION = [[200, 150, 100], [50, 200, 50], [50, 50, 150]]
METRICS = {
    "aggregate": {"model": {"accuracy": 0.58, "win_rate": 0.55, "confusion": CONFUSION}},
    "config": {"horizon_bars": 4, "flat_threshold": 0.5, "confidence_threshold": 0.4, "cost_per_trade": 0.0001},
    "data": {"series": ["EURUSD/1h"], "class_balance": {"SELL": 0.3, "HOLD": 0.4, "BUY": 0.3}},
}
SIGNAL_SHARES = {"SELL": 0.3, "HOLD": 0.4, "BUY": 0.3}


def indicator_frame(rows: int, seed: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    """Indicators drawn around LEVELS; `shift` moves a column by that many standard deviations."""
    rng = np.random.default_rng(seed)
    shift = shift or {}
    return pd.DataFrame({c: rng.normal(m + shift.get(c, 0.0) * s, s, rows) for c, (m, s) in LEVELS.items()})[
        list(INDICATOR_COLUMNS)]


def register_version(
    engine: Engine, settings: Settings, folder: Path, version: str, *, reference: pd.DataFrame | None = None,
    metrics: dict[str, Any] | None = None, approved: bool = True,
) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.pt").write_bytes(version.encode() * 64)
    (folder / "metrics.json").write_text(json.dumps(metrics or METRICS))
    if reference is not None:
        reference.to_parquet(folder / "reference.parquet", index=False)
    register_model(engine, store_for(settings), version=version, artifacts_dir=folder, metrics=metrics or METRICS,
                   approved=approved, reasons=[] if approved else ["accuracy too low"], actor="test")
    return version


@pytest.fixture
def production(engine: Engine, settings: Settings, tmp_path: Path) -> str:
    """signal-lstm v1 in production, with a 2,000-row reference sample."""
    version = register_version(engine, settings, tmp_path / "artifacts-v1", "v1",
                               reference=indicator_frame(2000, seed=1))
    promote(engine, version, 100, actor="test")
    return version


def log_predictions(
    engine: Engine, features: pd.DataFrame, *, version: str, at: datetime | None = None,
    signals: list[str] | None = None, symbol: str = "EURUSD", timeframe: str = "1h", spacing: timedelta | None = None,
    latency_ms: float = 2.0, confidence: float = 0.6,
) -> list[int]:
    """Rows in `predictions` as the service logs them; returns their ids. Times go back from `at` (default now)."""
    at = at or datetime.now(UTC) - timedelta(minutes=1)
    spacing = spacing if spacing is not None else timedelta(seconds=1)
    rng = np.random.default_rng(len(features))
    signals = signals or list(rng.choice(list(SIGNAL_SHARES), len(features), p=list(SIGNAL_SHARES.values())))
    rows = []
    for i, (values, signal) in enumerate(zip(features.to_dict("records"), signals, strict=True)):
        request_id = uuid.uuid4().hex
        rows.append({
            "request_id": request_id, "symbol": symbol,
            "request": {"symbol": symbol, "timeframe": timeframe, "indicators": {}, "request_id": request_id},
            "features": {k: float(v) for k, v in values.items()},
            "output": {"signal": signal, "confidence": confidence, "model_version": version, "latency_ms": latency_ms},
            "model_version": version, "latency_ms": latency_ms, "created_at": at - spacing * i,
        })
    with engine.begin() as conn:
        result = conn.execute(Prediction.__table__.insert().returning(Prediction.id), rows)
        return [int(r[0]) for r in result]


def log_outcomes(engine: Engine, version: str, *, correct: int, wrong: int, start: datetime,
                 wins: int | None = None, latency_ms: float = 2.0) -> None:
    """`correct + wrong` evaluated BUY decisions on distinct bars; the first `wins` traded ones win."""
    n = correct + wrong
    wins = correct if wins is None else wins
    ids = log_predictions(engine, indicator_frame(n, seed=n), version=version, at=start + timedelta(seconds=n),
                          signals=["BUY"] * n, latency_ms=latency_ms)
    rows = []
    for i, prediction_id in enumerate(ids):
        entry = start + timedelta(hours=i)
        rows.append({
            "prediction_id": prediction_id, "model_version": version, "symbol": "EURUSD", "timeframe": "1h",
            "signal": "BUY", "confidence": 0.6, "predicted_at": start + timedelta(seconds=n - i), "horizon_bars": 4,
            "entry_ts": entry, "exit_ts": entry + timedelta(hours=4), "entry_close": 1.1, "exit_close": 1.1,
            "realized_return": 0.001 if i < wins else -0.001, "realized_signal": "BUY" if i < correct else "SELL",
            "correct": i < correct, "traded": True, "win": i < wins, "evaluated_at": datetime.now(UTC),
        })
    with engine.begin() as conn:
        conn.execute(PredictionOutcome.__table__.insert(), rows)


# -- a real SMTP server -------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Mailbox:
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[Any] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        self.envelopes.append(envelope)
        self.messages.append(message_from_bytes(envelope.original_content or envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[Mailbox]:
    """aiosmtpd on 127.0.0.1 (free port), collecting messages; stopped after the test."""
    from aiosmtpd.controller import Controller

    box = Mailbox(free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port, data_size_limit=20_000_000)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def mail_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], smtp_server: Mailbox) -> Mailbox:
    """Settings pointing at the test SMTP server (no TLS, no login)."""
    for key, value in {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_server.port), "SMTP_STARTTLS": "false",
                       "ALERT_EMAIL_FROM": "aicash@test.local", "ALERT_EMAIL_TO": "ml-team@test.local"}.items():
        monkeypatch.setenv(key, value)
    return smtp_server


# -- a KFP API server -----------------------------------------------------------------------------------------------
@dataclass
class KfpApi:
    """What a small real HTTP server speaking the KFP v2beta1 REST endpoints `kfp.Client` uses was sent."""

    url: str
    # (method, path, query, JSON body) of every request
    requests: list[tuple[str, str, dict[str, list[str]], Any]] = field(default_factory=list)
    experiments: dict[str, str] = field(default_factory=dict)  # display name -> id

    def runs(self) -> list[dict[str, Any]]:
        return [body for method, path, _, body in self.requests if (method, path) == ("POST", "/apis/v2beta1/runs")]


def _kfp_handler(api: KfpApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            api.requests.append(("GET", url.path, parse_qs(url.query), None))
            if url.path == "/apis/v2beta1/healthz":
                self._answer(200, {"multi_user": False})
            elif url.path == "/apis/v2beta1/experiments":
                wanted = json.loads(parse_qs(url.query).get("filter", ["{}"])[0]).get("predicates", [{}])[0]
                found = [{"experiment_id": i, "display_name": n} for n, i in api.experiments.items()
                         if n == wanted.get("stringValue", n)]
                self._answer(200, {"experiments": found, "total_size": len(found)} if found else {})
            else:
                self._answer(404, {"error": f"no route {url.path}", "code": 5})

        def do_POST(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            api.requests.append(("POST", url.path, parse_qs(url.query), body))
            if url.path == "/apis/v2beta1/experiments":
                experiment_id = api.experiments.setdefault(body["display_name"], f"exp-{len(api.experiments) + 1}")
                self._answer(200, {"experiment_id": experiment_id, "display_name": body["display_name"]})
            elif url.path == "/apis/v2beta1/runs":
                self._answer(200, {"run_id": f"run-{len(api.runs())}", "display_name": body.get("display_name"),
                                   "experiment_id": body.get("experiment_id"), "state": "PENDING"})
            else:
                self._answer(404, {"error": f"no route {url.path}", "code": 5})

    return Handler


@pytest.fixture
def kfp_api() -> Iterator[KfpApi]:
    """A real HTTP server on 127.0.0.1 answering the KFP REST calls of `kfp.Client.create_run_from_pipeline_package`
    (healthz, experiments list/create, runs create) and recording them: no KFP server can run here."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    api = KfpApi(f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _kfp_handler(api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
