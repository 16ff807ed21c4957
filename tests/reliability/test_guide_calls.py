"""The implementation guide's calls, each exactly as the guide writes it (only the `X-API-Key` header added),
against a served model: with `curl` when it is installed, else the same request through httpx (method, headers
and body as curl sends them: `-d` without `-H "Content-Type: ..."` is labelled a form).

The service runs on a copy of the reliability template, whose two versions get the metrics.json their trainer
wrote, as the pipeline registers them. Its candles are deleted before the forced training run, so that run fails
in its first step instead of training for minutes; the test asserts its 202, its id and that /training-status
lists it, not its outcome. `docs/guide-calls.md` maps each call to aicash and quotes each one as tested here.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text, update

from aicash.db.engine import make_engine
from aicash.db.models import AuditLog, MLModel
from tests.support import REPO
from tests.support.service import (
    AICASH,
    Running,
    Template,
    copy_home,
    create_keys,
    home_database_url,
    start_service,
    stop_service,
)

# The guide's calls, copied from it (its hosts are replaced by the service's URL).
GUIDE_HOSTS = ("https://your-trainer.railway.app", "https://your-inference.railway.app",
               "https://your-service.railway.app")
TRAIN_FORCED = """curl -X POST https://your-trainer.railway.app/train \\
  -H "Content-Type: application/json" \\
  -d '{"force_retrain": true}'"""
TRAIN_BARE = "curl -X POST https://your-trainer.railway.app/train"
MODELS = "curl https://your-trainer.railway.app/models"
TRAINING_STATUS = "curl https://your-trainer.railway.app/training-status"
PREDICT = """curl -X POST https://your-inference.railway.app/predict \\
  -H "Content-Type: application/json" \\
  -d '{"symbol":"EURUSD","indicators":{"rsi_value":65}}'"""
PREDICT_E2E = ("""curl -X POST https://your-inference.railway.app/predict """
               """-d '{"symbol":"EURUSD","indicators":{"rsi_value":65}}'""")
HEALTH = "curl https://your-service.railway.app/health"
METRICS = "curl https://your-service.railway.app/metrics"
ROLLBACK = """curl -X POST https://your-trainer.railway.app/models/previous-version/promote \\
  -d '{"traffic_percentage": 100}'"""
GUIDE_CALLS = (TRAIN_FORCED, TRAIN_BARE, MODELS, TRAINING_STATUS, PREDICT, PREDICT_E2E, HEALTH, METRICS, ROLLBACK)
# The frontend integration (section 5.2), a fetch() whose body is JSON.stringify of this object.
FRONTEND_BODY = {"symbol": "EURUSD", "indicators": {"rsi_value": 65, "adx_value": 28, "ema_12": 1.0850}}
CURL = shutil.which("curl")


@pytest.fixture(scope="module")
def guide(template: Template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A service on its own copy of the template; each version registered with its trainer's metrics.json."""
    home = copy_home(template, tmp_path_factory.mktemp("guide") / "home")
    engine = make_engine(home_database_url(home))
    with engine.begin() as conn:
        for version, folder in ((template.production, "artifacts-1"), (template.canary, "artifacts-2")):
            metrics = json.loads((home / folder / "metrics.json").read_text())
            conn.execute(update(MLModel).where(MLModel.version == version).values(metrics=metrics))
    engine.dispose()
    keys = create_keys(home, {"frontend": False, "ops": True})
    running = start_service(home)
    running.keys = keys
    yield running
    stop_service(running)


def call(running: Running, guide_call: str, key: str = "ops") -> tuple[int, str]:
    """The guide's call against the service with the key header added: (HTTP status, body)."""
    command = guide_call.replace("\\\n", " ")
    for host in GUIDE_HOSTS:
        command = command.replace(host, running.url)
    args = shlex.split(command)
    assert args[0] == "curl"
    header = f"X-API-Key: {running.keys[key]}"
    if CURL is None:
        return _like_curl(args[1:], header)
    done = subprocess.run(  # noqa: S603
        [CURL, *args[1:], "-H", header, "--silent", "--show-error", "--max-time", "60",
         "--write-out", "\n%{http_code}"],
        capture_output=True, text=True, timeout=90, check=False,
    )
    assert done.returncode == 0, done.stderr
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def _like_curl(args: list[str], header: str) -> tuple[int, str]:
    """The request curl makes of `-X`, `-H` and `-d` (curl's default type for `-d` included)."""
    method, headers, data, url = "GET", {}, None, ""
    pairs = iter([*args, "-H", header])
    for arg in pairs:
        if arg == "-X":
            method = next(pairs)
        elif arg == "-H":
            name, _, value = next(pairs).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-d":
            data = next(pairs).encode()
            method = "POST" if method == "GET" else method
        else:
            url = arg
    if data is not None and not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    answer = httpx.request(method, url, headers=headers, content=data, timeout=60)
    return answer.status_code, answer.text


def test_each_guide_call_is_in_the_docs() -> None:
    page = (REPO / "docs" / "guide-calls.md").read_text()
    for guide_call in GUIDE_CALLS:
        assert guide_call in page, guide_call


def test_health_and_metrics(guide: Running) -> None:
    status, body = call(guide, HEALTH)
    assert status == 200 and json.loads(body)["models"], body
    status, body = call(guide, METRICS)
    assert status == 200 and "aicash_request_latency_seconds" in body


def test_predict_as_the_guide_and_the_frontend_send_it(guide: Running) -> None:
    for guide_call in (PREDICT, PREDICT_E2E):  # with the JSON type, and with curl's default (the end-to-end test)
        status, body = call(guide, guide_call, key="frontend")
        assert status == 200, body
        assert json.loads(body)["signal"] in {"BUY", "SELL", "HOLD"}
    fetch = httpx.post(guide.url + "/predict", content=json.dumps(FRONTEND_BODY), timeout=60,
                       headers={"Content-Type": "application/json", "X-API-Key": guide.keys["frontend"]})
    assert fetch.status_code == 200 and 0 <= fetch.json()["confidence"] <= 1, fetch.text


def test_models_lists_each_version_with_its_evaluation(guide: Running, template: Template) -> None:
    status, body = call(guide, MODELS)
    assert status == 200, body
    answer = json.loads(body)
    assert {m["version"] for m in answer["models"]} == {template.production, template.canary}  # served here
    versions = {v["version"]: v for v in answer["versions"]}
    production = versions[template.production]
    assert production["status"] == "production" and production["traffic_percentage"] == 100.0
    assert versions[template.canary]["traffic_percentage"] == 30.0
    for figure in ("accuracy", "sharpe_after_costs", "average_confidence"):
        assert isinstance(production["metrics"][figure], float), (figure, production["metrics"])
    assert isinstance(production["metrics"]["trades"], int) and "win_rate" in production["metrics"]
    # of the traded signals: null for the template's tiny model when it never trades
    directional = production["metrics"]["directional_accuracy"]
    assert isinstance(directional, float) or (directional is None and production["metrics"]["trades"] == 0)
    assert isinstance(production["metrics"]["deflated_sharpe"], float) and production["metrics"]["trials"] == 1
    assert production["gate"] == {"passed": False, "reasons": ["failed: test model"]}
    data = production["training_data"]
    assert data["series"] == ["EURUSD/1h"] and data["first"] < data["last"] and production["created_at"]


def test_training_without_a_body_is_skipped_when_no_new_bar_arrived(guide: Running) -> None:
    """The guide's end-to-end test: no body, no Content-Type. The production model was trained on every stored
    bar, so there is nothing new: 200 with the reason, recorded as skipped."""
    status, body = call(guide, TRAIN_BARE)
    assert status == 200, body
    skipped = json.loads(body)
    assert skipped["status"] == "skipped" and "no new bar since the production model" in skipped["reason"]
    status, body = call(guide, TRAINING_STATUS)
    assert status == 200
    latest = json.loads(body)["runs"][0]
    assert (latest["run_id"], latest["status"], latest["error"]) == (skipped["run_id"], "skipped", skipped["reason"])


def test_force_retrain_starts_a_run(guide: Running) -> None:
    engine = make_engine(home_database_url(Path(guide.env["AICASH_HOME"])))
    with engine.begin() as conn:  # the run then fails in its first step instead of training for minutes
        conn.execute(text("DELETE FROM market_candles"))
    engine.dispose()
    status, body = call(guide, TRAIN_FORCED)
    assert status == 202, body
    started = json.loads(body)
    assert isinstance(started["run_id"], int) and started["status"] == "running"
    status, body = call(guide, TRAINING_STATUS)
    assert status == 200
    run = next(r for r in json.loads(body)["runs"] if r["run_id"] == started["run_id"])
    assert run["status"] in {"running", "failed"} and run["params"]["symbols"] == ["EURUSD"]


def test_model_rollback_to_the_previous_version(guide: Running, template: Template) -> None:
    status, body = call(guide, ROLLBACK)
    assert status == 409, body  # the template's production version is the first one
    assert "no previous production version" in json.loads(body)["error"]

    promoted = guide.post(f"/models/{template.canary}/promote", key="ops",
                          json={"traffic_percentage": 100, "force": True, "reason": "guide test: a newer version"})
    assert promoted.status_code == 200, promoted.text
    status, body = call(guide, ROLLBACK)
    assert status == 200, body
    answer = json.loads(body)
    assert answer["production"]["version"] == template.production and answer["serving"] == [[template.production,
                                                                                               100.0]]
    engine = make_engine(home_database_url(Path(guide.env["AICASH_HOME"])))
    with engine.connect() as conn:
        actor, details = conn.execute(select(AuditLog.actor, AuditLog.details).where(
            AuditLog.action == "model.rollback")).one()
    engine.dispose()
    assert actor == "api:ops" and details["new_production"] == template.production  # audited as a rollback


def test_the_connection_test(guide: Running) -> None:
    """The guide's `DatabaseService(...).test_connection()`: `aicash db current` and `aicash db check`."""
    for command in ("current", "check"):
        done = subprocess.run([AICASH, "db", command], env=guide.env, capture_output=True, text=True,  # noqa: S603
                              timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
