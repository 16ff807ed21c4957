"""Monitoring fixtures: a production model with a reference sample, a real SMTP server, a KFP API server.
The data helpers are in tests/support/monitoring.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from aicash.registry import promote
from aicash.settings import Settings
from tests.support.kfp_api import KfpApi, serve_kfp_api
from tests.support.monitoring import indicator_frame, register_version
from tests.support.net import free_port
from tests.support.smtp import Mailbox


@pytest.fixture
def production(engine: Engine, settings: Settings, tmp_path: Path) -> str:
    """signal-lstm v1 in production, with a 2,000-row reference sample."""
    version = register_version(engine, settings, tmp_path / "artifacts-v1", "v1",
                               reference=indicator_frame(2000, seed=1))
    promote(engine, version, 100, actor="test")
    return version


# -- a real SMTP server -------------------------------------------------------------------------------------------
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
@pytest.fixture
def kfp_api() -> Iterator[KfpApi]:
    """A real HTTP server on 127.0.0.1 answering the KFP REST calls of `kfp.Client.create_run_from_pipeline_package`
    (healthz, experiments list/create, runs create) and recording them: no KFP server can run here."""
    with serve_kfp_api() as api:
        yield api
