"""Admin operations over real HTTP: admin keys only, bad input named, every call audited (who, what, when)."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text

from aicash.db.engine import make_engine
from aicash.db.models import AuditLog, MLModel, TrainingRun
from tests.support.service import home_database_url

ADMIN_CALLS = [("POST", "/train", {"symbols": ["EURUSD"]}), ("GET", "/training-status", None),
               ("POST", "/models/v1/promote", {"traffic_percentage": 10}), ("POST", "/models/rollback", {})]


def last_audit_id(service) -> int:  # type: ignore[no-untyped-def]
    engine = make_engine(home_database_url(service.log_path.parent))
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.max(AuditLog.id))).scalar() or 0)
    finally:
        engine.dispose()


def audit(service, since: int, **where: str) -> list[AuditLog]:  # type: ignore[no-untyped-def]
    """Audit entries written after entry `since`, oldest first."""
    engine = make_engine(home_database_url(service.log_path.parent))
    try:
        with engine.connect() as conn:
            query = select(AuditLog).where(AuditLog.id > since)
            for name, value in where.items():
                query = query.where(getattr(AuditLog, name) == value)
            return list(conn.execute(query.order_by(AuditLog.id)).all())
    finally:
        engine.dispose()


def registry(service) -> dict[str, tuple[str, float]]:  # type: ignore[no-untyped-def]
    engine = make_engine(home_database_url(service.log_path.parent))
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(MLModel.version, MLModel.status, MLModel.traffic_percentage)).all()
    finally:
        engine.dispose()
    return {v: (s, t) for v, s, t in rows}


def call(service, method: str, path: str, body, key: str | None):  # type: ignore[no-untyped-def]
    headers = {"X-API-Key": service.keys[key]} if key else {}
    return httpx.request(method, service.url + path, json=body, headers=headers, timeout=30)


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_CALLS, ids=[p for _, p, _ in ADMIN_CALLS])
def test_ordinary_keys_get_403_and_the_attempt_is_audited(admin_service, method, path, body) -> None:  # type: ignore[no-untyped-def]
    since = last_audit_id(admin_service)
    before = registry(admin_service)
    answer = call(admin_service, method, path, body, "frontend")
    assert answer.status_code == 403 and "admin key" in answer.json()["error"]
    for key in (None, "gone"):  # no key, a revoked key
        refused = call(admin_service, method, path, body, key)
        assert refused.status_code == 401 and "API key" in refused.json()["error"]
    assert registry(admin_service) == before
    entries = audit(admin_service, since, action="admin.call", actor="api:frontend")
    assert [(e.target, e.details["method"], e.details["status"]) for e in entries] == [(path, method, 403)]


def test_promote_and_rollback_over_http(admin_service, template) -> None:  # type: ignore[no-untyped-def]
    since, began = last_audit_id(admin_service), datetime.now(UTC)
    canary, production = template.canary, template.production
    promoted = admin_service.post(f"/models/{canary}/promote", {"traffic_percentage": 100, "force": True,
                                                                "reason": "http test: full promotion"}, key="ops")
    assert promoted.status_code == 200, promoted.text
    body = promoted.json()
    assert body["promoted"]["status"] == "production" and body["serving"] == [[canary, 100.0]]
    assert [m["version"] for m in admin_service.get("/models").json()["models"]] == [canary]  # served at once
    assert registry(admin_service)[production][0] == "archived"

    again = admin_service.post(f"/models/{canary}/promote", {"traffic_percentage": 100, "force": True,
                                                            "reason": "again"}, key="ops")
    assert again.status_code == 409 and "already production" in again.json()["error"]

    rolled = admin_service.post("/models/rollback", {"reason": "http test: back"}, key="ops")
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["production"]["version"] == production
    assert [m["version"] for m in admin_service.get("/models").json()["models"]] == [production]
    empty = httpx.post(admin_service.url + "/models/rollback", timeout=30,
                       headers={"X-API-Key": admin_service.keys["ops"]})  # no body at all is allowed here
    assert empty.status_code == 409 and "no earlier one" in empty.json()["error"]

    domain = audit(admin_service, since, actor="api:ops")
    actions = [(e.action, e.target) for e in domain if e.action != "admin.call"]
    assert actions == [("model.promote", f"signal-lstm:{canary}"), ("model.rollback", f"signal-lstm:{production}")]
    changes = [e for e in domain if e.action != "admin.call"]
    assert changes[0].details["reason"] == "http test: full promotion" and changes[0].details["forced"] is True
    calls = [(e.target, e.details["status"]) for e in domain if e.action == "admin.call"]
    assert calls == [(f"/models/{canary}/promote", 200), (f"/models/{canary}/promote", 409),
                     ("/models/rollback", 200), ("/models/rollback", 409)]
    for entry in domain:  # when: stored in UTC, within the test
        at = entry.at if entry.at.tzinfo else entry.at.replace(tzinfo=UTC)
        assert began - timedelta(seconds=1) <= at <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("path", "body", "status", "named"),
    [
        ("/models/VERSION/promote", {"traffic_percentage": 150}, 400, "traffic_percentage"),
        ("/models/VERSION/promote", {"traffic_percentage": -1}, 400, "traffic_percentage"),
        ("/models/VERSION/promote", {"traffic_percentage": "half"}, 400, "traffic_percentage"),
        ("/models/VERSION/promote", {}, 400, "traffic_percentage"),
        ("/models/VERSION/promote", {"traffic_percentage": 10, "forse": True}, 400, "forse"),
        ("/models/VERSION/promote", {"traffic_percentage": 10, "force": True, "reason": ""}, 400, "reason"),
        ("/models/VERSION/promote", {"traffic_percentage": 10}, 409, "reason"),  # rejected by the gate: needs force
        ("/models/v0-unknown/promote", {"traffic_percentage": 10}, 404, "v0-unknown"),
        ("/models/bad%20version/promote", {"traffic_percentage": 10}, 400, "version"),
        ("/models/rollback", {"reason": "x" * 501}, 400, "reason"),
        ("/models/rollback", {"why": "x"}, 400, "why"),
        ("/train", {"symbols": ["eur/usd"]}, 400, "symbols"),
        ("/train", {"symbols": []}, 400, "symbols"),
        ("/train", {"timeframe": "7h"}, 400, "timeframe"),
        ("/train", {"pipeline": "mine"}, 400, "pipeline"),
        ("/train", {"config": {"max_epochs": 0}}, 400, "max_epochs"),
        ("/train", {"config": {"epochs": 3}}, 400, "epochs"),
        ("/train", {"pipeline": "signal-weights", "config": {"max_epochs": 2}}, 400, "config"),
    ],
)
def test_bad_admin_input_names_the_field(admin_service, template, path, body, status, named) -> None:  # type: ignore[no-untyped-def]
    before = registry(admin_service)
    answer = admin_service.post(path.replace("VERSION", template.canary), body, key="ops")
    assert answer.status_code == status, answer.text
    assert named in answer.json()["error"], answer.text
    assert registry(admin_service) == before


def test_training_status_limit_is_checked(admin_service) -> None:  # type: ignore[no-untyped-def]
    for limit in ("0", "101", "ten"):
        answer = admin_service.get(f"/training-status?limit={limit}", key="ops")
        assert answer.status_code == 400 and "limit" in answer.json()["error"]


def test_train_returns_at_once_and_a_failed_run_is_recorded(admin_service) -> None:  # type: ignore[no-untyped-def]
    """GBPUSD has no candles: the local pipeline fails in its training-set step. The request returns at once;
    a second one while it runs is refused; the run ends `failed` with its error and an alert-worthy audit entry,
    and nothing is registered."""
    since = last_audit_id(admin_service)
    before = registry(admin_service)
    start = time.monotonic()
    answer = admin_service.post("/train", {"symbols": ["GBPUSD"], "config": {"max_epochs": 1}}, key="ops")
    assert answer.status_code == 202, answer.text
    assert time.monotonic() - start < 5
    run_id = answer.json()["run_id"]
    assert answer.json()["status"] == "running" and answer.json()["mode"] == "local"
    busy = admin_service.post("/train", {}, key="ops")
    assert busy.status_code == 409 and f"training run {run_id}" in busy.json()["error"]

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = admin_service.get("/training-status", key="ops").json()["runs"]
        latest = next(r for r in runs if r["run_id"] == run_id)
        if latest["status"] != "running":
            break
        time.sleep(1)
    assert latest["status"] == "failed", latest
    assert "GBPUSD" in latest["error"] and "\x1b[" not in latest["error"]  # the cause, without terminal colours
    assert latest["params"]["symbols"] == ["GBPUSD"] and latest["finished_at"]
    assert registry(admin_service) == before  # nothing half-registered
    submitted = audit(admin_service, since, action="training.submit")
    assert [(e.actor, e.details["run_id"]) for e in submitted] == [("api:ops", run_id)]
    failed = audit(admin_service, since, action="training.failed")
    assert [e.details["run_id"] for e in failed] == [run_id] and "GBPUSD" in failed[0].details["error"]

    # The alert fires on it: `aicash monitor check` against the service's database and its /metrics.
    check = subprocess.run(  # noqa: S603
        [str(Path(sys.executable).parent / "aicash"), "monitor", "check", "--metrics-url",
         admin_service.url + "/metrics"], env=admin_service.env, capture_output=True, text=True, timeout=120,
        check=False,
    )
    assert check.returncode == 1, check.stdout + check.stderr
    firing = [line for line in check.stdout.splitlines() if "AicashTrainingFailed" in line]
    assert firing and "GBPUSD" in check.stdout, check.stdout


def training_runs(service) -> int:  # type: ignore[no-untyped-def]
    engine = make_engine(home_database_url(service.log_path.parent))
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(TrainingRun)).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.parametrize("refused", ["every entry", "the operation's own entry"])
def test_an_audit_entry_that_cannot_be_written_fails_the_operation(admin_service, refused) -> None:  # type: ignore[no-untyped-def]
    """A trigger makes the audit insert fail: the service's `admin.call` entry (written before the call runs), or
    only the operation's own entry (`model.promote`, `model.rollback`, `training.submit`, in the same transaction
    as the change). Every admin operation answers 503 with Retry-After, and nothing changed."""
    when = "" if refused == "every entry" else "WHEN NEW.action <> 'admin.call' "
    engine = make_engine(home_database_url(admin_service.log_path.parent))
    with engine.begin() as conn:
        conn.execute(text(f"CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log {when}"
                          "BEGIN SELECT RAISE(ABORT, 'audit refused by the test'); END"))
    before, runs_before, since = registry(admin_service), training_runs(admin_service), last_audit_id(admin_service)
    other = next(v for v, (status, _) in sorted(before.items()) if status != "production")
    served = {m["version"] for m in admin_service.get("/models").json()["models"]}
    try:
        promoted = admin_service.post(f"/models/{other}/promote", {"traffic_percentage": 100, "force": True,
                                                                  "reason": "must not happen"}, key="ops")
        trained = admin_service.post("/train", {"symbols": ["EURUSD"]}, key="ops")
        rolled = admin_service.post("/models/rollback", {"reason": "must not happen"}, key="ops")
        # with nothing to roll back the registry refuses (409) before it writes anything
        answers = [promoted, trained] + ([rolled] if refused == "every entry" or rolled.status_code != 409 else [])
        for answer in answers:
            assert answer.status_code == 503, answer.text
            assert answer.headers["Retry-After"] and "audit entry" in answer.json()["error"], answer.text
        assert registry(admin_service) == before and training_runs(admin_service) == runs_before
        assert {m["version"] for m in admin_service.get("/models").json()["models"]} == served
        assert [e.action for e in audit(admin_service, since) if e.action != "admin.call"] == []
    finally:
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse_audit"))
        engine.dispose()
