"""Real commands of each workload under its own login, on a copy of the cluster-mode home (PostgreSQL, Feast in
schema feast): the training steps as a login in aicash_training, the monitoring commands as one in
aicash_monitoring, `aicash db grant-logins` as the owner. (The HTTP suite serves as a login in aicash_serving:
tests/bentos/conftest.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, text
from typer.testing import CliRunner

from aicash.cli.main import app
from aicash.db.engine import make_engine
from aicash.db.models import AuditLog, DriftReport, LiveMetrics, MLModel, PredictionOutcome, SignalWeights
from tests.support.monitoring import indicator_frame, log_predictions, register_version
from tests.support.roles import PASSWORD, login_name, login_url
from tests.support.service import Template, environment, home_env


def as_login(copy: Template, role: str) -> dict[str, str]:
    """The process environment of a workload on the copy's home that logs in as the test login in `role`."""
    return home_env(copy.home, {"DATABASE_URL": login_url(copy.database_url, role)})


def test_training_steps_run_as_a_training_login(copy: Template, tmp_path: Path) -> None:
    from aicash.registry import promote, rollback
    from aicash.settings import load_settings
    from pipelines.steps import build_training_set, optimize_weights, save_weights_if_better

    env = as_login(copy, "aicash_training")
    with environment(env):
        # Feast's point-in-time join: reads candles and features, uploads its entity rows to a table in `feast`
        rows = build_training_set(["EURUSD"], "1h", str(tmp_path / "set.parquet"), log=lambda _: None)
        result = optimize_weights(["EURUSD"], "1h", "backtest", log=lambda _: None)
        saved = save_weights_if_better(result, actor="test", log=lambda _: None)
        training = make_engine(env["DATABASE_URL"])
        version = register_version(training, load_settings(), tmp_path / "model", "v-role-test")
        promote(training, copy.canary, 100, force=True, reason="role test", actor="test")  # the admin operations
        rollback(training, "test", reason="role test")
        training.dispose()
    assert rows > 0 and (saved.startswith("saved version") or saved.startswith("not saved"))
    owner = make_engine(copy.database_url)
    with owner.connect() as conn:
        assert conn.execute(select(MLModel.version).where(MLModel.version == version)).scalar() == version
        actions = set(conn.execute(select(AuditLog.action).where(AuditLog.actor == "test")).scalars())
        assert {"model.register", "model.promote", "model.rollback"} <= actions
        if saved.startswith("saved"):
            assert conn.execute(select(SignalWeights.id)).first() is not None
    owner.dispose()


def test_monitoring_commands_run_as_a_monitoring_login(copy: Template) -> None:
    owner = make_engine(copy.database_url)
    with owner.connect() as conn:
        last_bar = conn.execute(text("SELECT max(ts) FROM market_candles")).scalar()
    # predictions made a day before the last bar, so that the bars after them give outcomes
    log_predictions(owner, indicator_frame(40, seed=3), version=copy.production, at=last_bar - timedelta(hours=24),
                    spacing=timedelta(minutes=30))
    log_predictions(owner, indicator_frame(40, seed=4), version=copy.production, at=datetime.now(UTC))
    env = as_login(copy, "aicash_monitoring")
    runner = CliRunner()
    with environment(env):
        outcomes = runner.invoke(app, ["monitor", "outcomes", "--lookback-days", "3650"], catch_exceptions=False)
        check = runner.invoke(app, ["monitor", "check", "--no-latency"], catch_exceptions=False)
        canary = runner.invoke(app, ["monitor", "canary"], catch_exceptions=False)
        drift = runner.invoke(app, ["monitor", "drift", "--since", "30d"], catch_exceptions=False)
        from aicash.registry import promote

        judge = make_engine(env["DATABASE_URL"])  # what `monitor canary --apply` does to end a canary
        ended = promote(judge, copy.canary, 0, actor="monitor", reason="role test: the judge ends the canary")
        judge.dispose()
    assert ended.traffic_percentage == 0
    assert outcomes.exit_code == 0, outcomes.stdout + outcomes.stderr
    assert check.exit_code in (0, 1), check.stdout + check.stderr  # 1: a rule fires; never a refused statement
    assert "permission denied" not in (check.stdout + check.stderr).lower()
    assert canary.exit_code == 0, canary.stdout + canary.stderr  # judged (too few live results: keep)
    assert drift.exit_code == 0, drift.stdout + drift.stderr  # a report written (and recorded)
    with owner.connect() as conn:
        assert conn.execute(select(PredictionOutcome.prediction_id)).first() is not None
        assert conn.execute(select(LiveMetrics.day)).first() is not None
        assert conn.execute(select(DriftReport.id)).first() is not None
    owner.dispose()


def test_grant_logins_creates_each_login_in_its_role(copy: Template) -> None:
    url = copy.database_url
    logins = {"SERVING_DATABASE_URL": "aicash_serving", "MONITORING_DATABASE_URL": "aicash_monitoring"}
    env = home_env(copy.home, {"DATABASE_URL": url, **{name: login_url(url, role) for name, role in logins.items()}})
    with environment(env):
        first = CliRunner().invoke(app, ["db", "grant-logins"], catch_exceptions=False)
    assert first.exit_code == 0, first.stdout + first.stderr
    assert f"login {login_name('aicash_serving')} in aicash_serving: updated" in first.stdout
    assert PASSWORD not in first.stdout + first.stderr
    owner = make_engine(url)
    with owner.connect() as conn:
        member = conn.execute(text("SELECT pg_has_role(:login, 'aicash_monitoring', 'MEMBER')"),
                              {"login": login_name("aicash_monitoring")}).scalar()
    owner.dispose()
    assert member is True


def test_kfp_runs_are_recorded_and_synced_as_the_monitoring_login(copy: Template) -> None:
    """What `monitor drift --retrain` records when it submits (pipelines.launch.submit, here through `pipeline
    submit`) and what the KFP sync job (`pipeline status`) writes when the run fails on the cluster."""
    from tests.support.kfp_api import run_state, serve_kfp_api

    env = as_login(copy, "aicash_monitoring")
    runner = CliRunner()
    with serve_kfp_api() as api, environment(env):
        submitted = runner.invoke(app, ["pipeline", "submit", "lstm-training", "--host", api.url],
                                  catch_exceptions=False)
        api.states["run-1"] = [run_state("FAILED", error="boom", finished_at="2026-12-06T11:00:00Z")]
        synced = runner.invoke(app, ["pipeline", "status", "--host", api.url], catch_exceptions=False)
    assert submitted.exit_code == 0, submitted.stdout + submitted.stderr
    assert synced.exit_code == 0, synced.stdout + synced.stderr
    owner = make_engine(copy.database_url)
    with owner.connect() as conn:
        status = conn.execute(text("SELECT status FROM training_runs WHERE params->>'kfp_run_id' = 'run-1'")).scalar()
        failed = conn.execute(select(AuditLog.id).where(AuditLog.action == "training.failed")).first()
    owner.dispose()
    assert status == "failed" and failed is not None
