"""The 15-minute health job during a database outage: `aicash monitor check` evaluates every rule that needs no
database, fires `AicashDatabaseUnreachable` and mails it through a real SMTP server; a mail that cannot be sent is a
non-zero exit. The exporter reports the outage as `aicash_database_up 0`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from aicash.db import migrate
from aicash.db.engine import make_engine
from aicash.monitoring import alerts
from aicash.monitoring import status as st
from aicash.settings import load_settings
from tests.conftest import Cli
from tests.monitoring.test_alerts import MetricsServer, exposition, feature_age_exposition
from tests.support.net import free_port
from tests.support.smtp import Mailbox

PASSWORD = "s3cret-Pa55"  # noqa: S105 - a test's password that must never be printed or mailed
DATABASE_RULES = ("AicashDriftDetected", "AicashTrainingFailed", "AicashLiveAccuracyLow")


def smtp_env(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    for key, value in {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_STARTTLS": "false",
                       "ALERT_EMAIL_FROM": "aicash@test.local", "ALERT_EMAIL_TO": "ml-team@test.local"}.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def down_url(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """DATABASE_URL: PostgreSQL with a password on a loopback port where nothing listens."""
    url = f"postgresql://aicash:{PASSWORD}@127.0.0.1:{free_port()}/aicash"
    monkeypatch.setenv("DATABASE_URL", url)
    return url


@pytest.fixture
def service() -> Iterator[MetricsServer]:
    server = MetricsServer()
    try:
        yield server
    finally:
        server.close()


def states_of(stdout: str) -> dict[str, str]:
    """Each rule's state as the check's table prints it."""
    return dict(re.findall(r"│ (Aicash\w+)\s+│ (ok|firing|error)\s+│", stdout))


def test_check_evaluates_the_service_rules_and_mails_the_outage(down_url: str, service: MetricsServer,
                                                                smtp_server: Mailbox, monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:  # fmt: skip
    smtp_env(monkeypatch, smtp_server.port)
    service.text = exposition([0.01] * 50) + feature_age_exposition({("EURUSD", "1h"): (9e7, 11100.0)})
    textfile = tmp_path / "textfile" / "aicash.prom"

    result = Cli()("monitor", "check", "--metrics-url", service.url, "--email", "--textfile", str(textfile))

    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and PASSWORD not in result.output
    states = states_of(result.stdout)
    assert states["AicashPredictLatencyHigh"] == "ok" and states["AicashFeaturesStale"] == "firing"
    assert states["AicashDatabaseUnreachable"] == "firing"
    assert all(states[rule] == "error" for rule in DATABASE_RULES), states
    assert [m["Subject"].strip() for m in smtp_server.messages] == [  # a long subject is folded onto its own line
        "[aicash] 2 alerts firing: AicashFeaturesStale, AicashDatabaseUnreachable"]
    body = smtp_server.messages[0].get_body(("plain",)).get_content()
    where = down_url.split("@")[1].split("/")[0]
    assert f"AicashDatabaseUnreachable (firing): the database is unreachable: PostgreSQL at {where}/aicash" in body
    assert "Connection refused" in body and "Check DATABASE_URL" in body and PASSWORD not in body
    assert "mailed 2 alert(s) to ml-team@test.local" in result.stdout
    families = {f.name: f for f in text_string_to_metric_families(textfile.read_text())}
    assert families[st.DATABASE_UP].samples[0].value == 0


def test_a_postgresql_that_stops_is_mailed(stoppable_postgres, clean_env: Path,  # type: ignore[no-untyped-def]
                                           smtp_server: Mailbox, monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("DATABASE_URL", stoppable_postgres.url)
    smtp_env(monkeypatch, smtp_server.port)
    cli = Cli()
    assert cli("db", "upgrade").exit_code == 0
    up = cli("monitor", "check", "--no-latency", "--email")
    assert up.exit_code == 0, up.output
    assert states_of(up.stdout)["AicashDatabaseUnreachable"] == "ok" and smtp_server.messages == []

    stoppable_postgres.stop()
    down = cli("monitor", "check", "--no-latency", "--email")

    assert down.exit_code == 1, down.output
    assert states_of(down.stdout)["AicashDatabaseUnreachable"] == "firing"
    assert [m["Subject"] for m in smtp_server.messages] == ["[aicash] 1 alert firing: AicashDatabaseUnreachable"]
    body = smtp_server.messages[0].get_body(("plain",)).get_content()
    assert f"PostgreSQL at {stoppable_postgres.socket_dir}:" in body
    assert "Not evaluated: " + ", ".join(DATABASE_RULES) in body


def test_a_mail_that_cannot_be_sent_is_not_silent(down_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    smtp_env(monkeypatch, free_port())  # nothing listens there
    result = Cli()("monitor", "check", "--no-latency", "--email")
    assert result.exit_code == 1, result.output
    assert states_of(result.stdout)["AicashDatabaseUnreachable"] == "firing"
    assert "could not mail ml-team@test.local through 127.0.0.1:" in result.stderr
    assert "the alerts above were not mailed" in result.stderr and "Traceback" not in result.output


def test_the_rules_without_a_database() -> None:
    down = {s.rule: s for s in alerts.evaluate(alerts.Inputs(None, database_error="the database is unreachable: x."))}
    assert down["AicashDatabaseUnreachable"].firing and down["AicashDatabaseUnreachable"].detail.startswith(
        "the database is unreachable: x. Not evaluated: AicashDriftDetected")
    for rule in DATABASE_RULES:
        assert down[rule].state == "error" and not down[rule].firing and "not evaluated" in down[rule].detail
    assert not down["AicashPredictLatencyHigh"].error and not down["AicashFeaturesStale"].error
    quiet = st.MonitorStatus(datetime.now(UTC), [], {}, None, [], 0.55)
    up = {s.rule: s for s in alerts.evaluate(alerts.Inputs(quiet))}
    assert up["AicashDatabaseUnreachable"].state == "ok" and not any(s.firing or s.error for s in up.values())
    needs_no_database = {r.name for r in alerts.RULES if not r.needs_database}
    assert needs_no_database == {"AicashPredictLatencyHigh", "AicashFeaturesStale", "AicashDatabaseUnreachable"}


def _exported(engine) -> dict[str, float]:  # type: ignore[no-untyped-def]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(st.StatusCollector(engine, load_settings()))
    families = text_string_to_metric_families(generate_latest(registry).decode())
    return {f.name: f.samples[0].value for f in families if f.samples}


def test_the_exporter_says_whether_the_database_answers(down_url: str, tmp_path: Path) -> None:
    down = make_engine(down_url)
    assert _exported(down) == {st.DATABASE_UP: 0.0}
    down.dispose()
    up = make_engine(f"sqlite:///{tmp_path / 'up.db'}")
    migrate.upgrade(up)
    exported = _exported(up)
    assert exported[st.DATABASE_UP] == 1.0 and exported[st.TRAINING_FAILED] == 0.0
    up.dispose()


def test_the_exporter_loop_survives_an_outage(down_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from aicash.cli.monitor import _join_outcomes

    engine = make_engine(down_url)
    _join_outcomes(engine, down_url)  # a warning, not an exception
    engine.dispose()
    err = capsys.readouterr().err
    assert err.startswith("warning: the database is unreachable: PostgreSQL at 127.0.0.1:") and PASSWORD not in err
