"""`aicash monitor drift`: Evidently report against the production reference, mailed over a real SMTP server.

Evidently takes about a second per report here, so these run on SQLite only; the database reads they rely on run
on both databases in test_window.py.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from aicash.db.models import AuditLog, DriftReport
from aicash.settings import load_settings
from monitoring.drift_job import DriftJobInputError, run_drift_job, summary_html
from tests.support.monitoring import SHIFTED, cluster_drift_run, indicator_frame, log_predictions, register_version
from tests.support.net import free_port

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)



def _attachment(message):  # type: ignore[no-untyped-def]
    parts = list(message.iter_attachments())
    assert len(parts) == 1
    assert parts[0].get_content_type() == "text/html"  # a plain .html: the mail client opens it directly
    return parts[0].get_filename(), parts[0].get_content()


def test_shifted_data_is_detected_and_mailed(cli, engine, production, mail_env) -> None:  # type: ignore[no-untyped-def]
    log_predictions(engine, indicator_frame(2000, seed=2, shift=SHIFTED), version=production)

    result = cli("monitor", "drift", "--since", "24h")

    assert result.exit_code == 0, result.output
    assert "drift detected: 5 of 16 features drifted" in result.stdout
    assert len(mail_env.messages) == 1
    message = mail_env.messages[0]
    assert message["Subject"] == "[aicash] Drift detected: 5 of 16 features (signal-lstm v1)"
    assert message["To"] == "ml-team@test.local"
    summary = message.get_body(("html",)).get_content()
    for column in SHIFTED:
        assert column in summary
    drifted_line = summary.split("Drifted features (score; mean shift over the whole window")[1].split("</li>")[0]
    assert "ema_12 (" not in drifted_line and "rsi_value (" in drifted_line
    name, brief = _attachment(message)  # Evidently's report (~4.8 MB with its JavaScript) is over the budget
    assert name.startswith("drift-summary-") and name.endswith(".html")
    assert brief.lstrip().lower().startswith("<!doctype html") and "<script" not in brief.lower()
    assert "rsi_value: drifted" in brief and "ema_12: stable" in brief
    assert len(message.as_bytes()) < 5_000_000

    row = engine.connect().execute(select(DriftReport)).one()
    assert row.detected and row.emailed and row.drifted_share == 5 / 16 and row.model_version == production
    folder = Path(row.location)
    html = (folder / "report.html").read_text()  # the full report, kept beside the one mailed
    assert "Value Drift" in html and "rsi_value" in html and "Wasserstein" in html
    assert (folder / "summary.html").read_text() == brief
    assert str(folder / "report.html") in summary and str(folder / "report.html") in brief
    summary_json = json.loads((folder / "summary.json").read_text())
    assert sorted(summary_json["drifted_features"]) == sorted(SHIFTED)
    shifts = {f["column"]: f["mean_shift"] for f in summary_json["features"]}  # "by how much", in reference sd
    assert all(shifts[c] == pytest.approx(2.0, abs=0.15) for c in SHIFTED)
    assert shifts["ema_12"] == pytest.approx(0.0, abs=0.15)
    assert "mean shift +2." in message.get_body(("plain",)).get_content()
    assert json.loads((folder / "snapshot.json").read_text())["metrics"]


def test_unshifted_data_is_not_drift_and_not_mailed(cli, engine, production, mail_env) -> None:  # type: ignore[no-untyped-def]
    log_predictions(engine, indicator_frame(2000, seed=3), version=production)

    result = cli("monitor", "drift")

    assert result.exit_code == 0, result.output
    assert "no drift: 0 of 16 features drifted, predicted signal stable" in result.stdout
    assert mail_env.messages == []
    row = engine.connect().execute(select(DriftReport)).one()
    assert not row.detected and not row.emailed and not row.signal_drifted


def test_email_flag_mails_even_without_drift(cli, engine, production, mail_env) -> None:  # type: ignore[no-untyped-def]
    log_predictions(engine, indicator_frame(500, seed=4), version=production)
    result = cli("monitor", "drift", "--email")
    assert result.exit_code == 0, result.output
    assert [m["Subject"] for m in mail_env.messages] == ["[aicash] Drift report: no drift (signal-lstm v1)"]


def test_signal_drift_alone_is_detected(engine, production, mail_env) -> None:  # type: ignore[no-untyped-def]
    """Inputs as in training, but the model answers BUY 90% of the time (reference: 30%)."""
    n = 1500
    signals = ["BUY"] * int(n * 0.9) + ["SELL"] * (n - int(n * 0.9))
    log_predictions(engine, indicator_frame(n, seed=5), version=production, signals=signals)
    run = run_drift_job(engine, load_settings(), timedelta(hours=24))
    assert run.result.detected and run.result.signal_drifted and not run.result.drifted_features
    assert run.mailed and "and the predicted signal" in mail_env.messages[0]["Subject"]


def test_unreachable_smtp_exits_1_and_keeps_the_report(cli, engine, production, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for key, value in {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(free_port()), "SMTP_STARTTLS": "false",
                       "ALERT_EMAIL_TO": "ml-team@test.local"}.items():
        monkeypatch.setenv(key, value)
    log_predictions(engine, indicator_frame(500, seed=6, shift=SHIFTED), version=production)

    result = cli("monitor", "drift")

    assert result.exit_code == 1
    assert "could not mail ml-team@test.local through 127.0.0.1:" in result.stderr
    assert "the report is kept at" in result.stderr
    row = engine.connect().execute(select(DriftReport)).one()
    assert row.detected and not row.emailed
    assert (Path(row.location) / "report.html").stat().st_size > 100_000
    assert str(Path(row.location)) in result.stderr.replace("\n", "")


def test_retrain_submits_the_training_pipeline_on_drift(engine, production, mail_env) -> None:  # type: ignore[no-untyped-def]
    """The drift job's side of retraining, with a submitter of the test's own (test_retrain.py runs the real ones)."""
    submitted: list[tuple[str, dict]] = []

    def submit(_engine, name: str, arguments: dict) -> str:  # type: ignore[no-untyped-def]
        submitted.append((name, arguments))
        return "run-42"

    log_predictions(engine, indicator_frame(800, seed=7, shift=SHIFTED), version=production)
    run = run_drift_job(engine, load_settings(), timedelta(hours=24), retrain=True, submit=submit)

    [(name, arguments)] = submitted
    assert name == "lstm-training" and arguments.pop("config_json")
    assert arguments == {"symbols": ["EURUSD"], "timeframe": "1h"}
    assert run.retrain_run == "run-42"
    assert "Retraining submitted: run <code>run-42</code>" in mail_env.messages[0].get_body(("html",)).get_content()
    with engine.connect() as conn:
        assert conn.execute(select(DriftReport.retrain_run)).scalar_one() == "run-42"
        audit = conn.execute(select(AuditLog).where(AuditLog.action == "monitor.retrain")).one()
    assert audit.actor == "monitor" and audit.details["run_id"] == "run-42"


def test_no_retraining_without_drift(engine, production, mail_env) -> None:  # type: ignore[no-untyped-def]
    log_predictions(engine, indicator_frame(800, seed=8), version=production)
    run = run_drift_job(engine, load_settings(), timedelta(hours=24), retrain=True,
                        submit=lambda engine, name, arguments: pytest.fail("submitted without drift"))
    assert run.retrain_run is None and not run.result.detected


def test_a_failing_submission_is_reported_and_the_mail_still_goes(cli, engine, production, mail_env) -> None:  # type: ignore[no-untyped-def]
    def submit(_engine, name: str, arguments: dict) -> str:  # type: ignore[no-untyped-def]
        raise ConnectionError("KFP API unreachable")

    log_predictions(engine, indicator_frame(800, seed=9, shift=SHIFTED), version=production)
    run = run_drift_job(engine, load_settings(), timedelta(hours=24), retrain=True, submit=submit)
    assert run.retrain_run is None and "KFP API unreachable" in (run.retrain_error or "")
    assert run.mailed and "Retraining NOT submitted" in mail_env.messages[0].get_body(("html",)).get_content()


def test_bad_input_exits_2_with_the_fix(cli, engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    none = cli("monitor", "drift")
    assert none.exit_code == 2 and "no production model" in none.stderr and "--traffic 100" in none.stderr

    bad = cli("monitor", "drift", "--since", "yesterday")
    assert bad.exit_code == 2 and "--since 'yesterday' is not a duration" in bad.stderr


def test_empty_window_exits_2(cli, engine, production) -> None:  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    log_predictions(engine, indicator_frame(50, seed=10), version=production,
                    at=datetime.now(UTC) - timedelta(days=3))
    result = cli("monitor", "drift", "--since", "24h")
    assert result.exit_code == 2
    assert "no logged predictions in the window" in result.stderr and "--since 7d" in result.stderr
    assert cli("monitor", "drift", "--since", "4d").exit_code == 0


def test_email_without_smtp_settings_exits_2_before_work(cli, engine, production) -> None:  # type: ignore[no-untyped-def]
    log_predictions(engine, indicator_frame(50, seed=11), version=production)
    result = cli("monitor", "drift", "--email")
    assert result.exit_code == 2 and "SMTP_HOST is not set" in result.stderr


def test_missing_reference_sample_is_a_clear_error(cli, engine, settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from aicash.registry import promote

    register_version(engine, settings, tmp_path / "no-ref", "v9", reference=None)
    promote(engine, "v9", 100, actor="test")
    log_predictions(engine, indicator_frame(50, seed=12), version="v9")
    with pytest.raises(DriftJobInputError, match="v9 has no reference.parquet"):
        run_drift_job(engine, settings, timedelta(hours=24))


def test_cluster_mode_reads_the_reference_from_s3_and_uploads_the_report(  # type: ignore[no-untyped-def]
    engine, monkeypatch, tmp_path, s3_bucket, moto_endpoint
) -> None:
    import boto3

    run = cluster_drift_run(engine, monkeypatch, tmp_path, s3_bucket, moto_endpoint)

    assert run.result.detected and run.s3_uri == f"s3://{s3_bucket}/reports/drift/{run.folder.name}/"
    keys = {o["Key"] for o in boto3.client("s3", endpoint_url=moto_endpoint).list_objects_v2(
        Bucket=s3_bucket, Prefix="reports/")["Contents"]}
    prefix = f"reports/drift/{run.folder.name}/"
    assert {prefix + f for f in ("report.html", "snapshot.json", "summary.json", "manifest.json")} <= keys
    with engine.connect() as conn:
        assert conn.execute(select(DriftReport.location)).scalar_one() == run.s3_uri
    assert run.mail_note and "SMTP_HOST is not set" in run.mail_note  # not configured: noted, not an error


def test_retrain_flag_wires_the_pipeline_runner_and_waits_for_drift(cli, engine, production) -> None:  # type: ignore[no-untyped-def]
    log_predictions(engine, indicator_frame(300, seed=14), version=production)
    result = cli("monitor", "drift", "--retrain")
    assert result.exit_code == 0, result.output
    assert "no drift" in result.stdout and "retraining" not in result.stdout



def test_a_window_larger_than_the_sample_is_read_whole(engine, production) -> None:  # type: ignore[no-untyped-def]
    """Evidently compares a sample; the counts and mean shifts in the summary cover every logged prediction."""
    log_predictions(engine, indicator_frame(1200, seed=15, shift={"rsi_value": 1.0}), version=production,
                    signals=["BUY"] * 700 + ["SELL"] * 500)
    run = run_drift_job(engine, load_settings(), timedelta(hours=24), max_current_rows=300)
    r = run.result
    assert (r.current_rows, r.compared_rows, r.current_signals) == (1200, 300, {"BUY": 700, "SELL": 500})
    whole = indicator_frame(1200, seed=15, shift={"rsi_value": 1.0})["rsi_value"].mean()
    reference = indicator_frame(2000, seed=1)["rsi_value"]
    rsi = next(c for c in r.features if c.column == "rsi_value")
    assert rsi.mean_shift == pytest.approx((whole - reference.mean()) / reference.std())
    assert "1,200 logged predictions (all read; Evidently compared a uniform sample of 300)" in summary_html(run, None)
