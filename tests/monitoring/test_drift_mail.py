"""The drift mail opens with one click: a plain `.html` attachment (text/html) under the mail's budget, received by a
real SMTP server (aiosmtpd), and a body that says where the full report is kept (locally and in S3)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import boto3
import pytest

from aicash.monitoring import mailer
from aicash.settings import load_settings
from monitoring.drift_job import mail_attachment, run_drift_job, summary_html
from tests.support.monitoring import SHIFTED, cluster_drift_run, indicator_frame, log_predictions

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # Evidently runs: SQLite only, as test_drift



def _only_attachment(message):  # type: ignore[no-untyped-def]
    [part] = list(message.iter_attachments())
    return part


@SQLITE
def test_the_mail_attaches_an_html_file_under_the_budget_and_says_where_the_report_is(  # type: ignore[no-untyped-def]
    engine, production, mail_env
) -> None:
    log_predictions(engine, indicator_frame(2000, seed=2, shift=SHIFTED), version=production)

    run = run_drift_job(engine, load_settings(), timedelta(hours=24), email=True)

    assert run.mailed and len(mail_env.messages) == 1
    message = mail_env.messages[0]
    part = _only_attachment(message)
    assert part.get_content_type() == "text/html" and part.get_content_disposition() == "attachment"
    assert part.get_content_charset() == "utf-8"
    assert part.get_filename() == f"drift-summary-{run.folder.name}.html"
    content = part.get_content()
    assert len(content.encode()) <= mailer.attachment_budget()
    assert len(message.as_bytes()) < mailer.MAX_MESSAGE_BYTES
    # Evidently's own report is over the budget: the reduced one goes, and the mail says so
    assert len(run.result.html.encode()) > mailer.attachment_budget()
    assert content == (run.folder / "summary.html").read_text()
    assert all(f"{column}: drifted" in content for column in SHIFTED)
    assert content.count("<svg") == 17  # a histogram per feature and the predicted signal's classes
    full = str(run.folder / "report.html")
    assert run.full_report == full and Path(full).read_text() == run.result.html
    body, text = message.get_body(("html",)).get_content(), message.get_body(("plain",)).get_content()
    assert full in body and f"full report: {full}" in text and full in content
    assert "over the mail&#x27;s budget of 5 MB" in body and "summary report" in body


@SQLITE
def test_a_report_that_fits_goes_whole(engine, production, mail_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With a budget Evidently's report fits in, it is the attachment, still a plain .html."""
    monkeypatch.setattr(mailer, "MAX_MESSAGE_BYTES", 15_000_000)
    log_predictions(engine, indicator_frame(500, seed=3, shift=SHIFTED), version=production)

    run = run_drift_job(engine, load_settings(), timedelta(hours=24), email=True)

    part = _only_attachment(mail_env.messages[0])
    assert part.get_content_type() == "text/html"
    assert part.get_filename() == f"drift-report-{run.folder.name}.html"
    assert part.get_content() == run.result.html
    assert "the full Evidently report is attached" in mail_env.messages[0].get_body(("html",)).get_content()


@SQLITE
def test_nothing_attached_when_neither_report_fits(engine, production) -> None:  # type: ignore[no-untyped-def]
    log_predictions(engine, indicator_frame(300, seed=4), version=production)
    run = run_drift_job(engine, load_settings(), timedelta(hours=24))
    assert mail_attachment(run, max_message_bytes=250_000) is None
    assert "nothing is attached" in summary_html(run, None) and run.full_report in summary_html(run, None)
    brief = mail_attachment(run, max_message_bytes=mailer.MAX_MESSAGE_BYTES)
    assert brief is not None and (brief.maintype, brief.subtype) == ("text", "html")


@SQLITE
def test_cluster_mode_mails_the_reports_s3_location(  # type: ignore[no-untyped-def]
    engine, monkeypatch, tmp_path, s3_bucket, moto_endpoint, mail_env
) -> None:
    run = cluster_drift_run(engine, monkeypatch, tmp_path, s3_bucket, moto_endpoint)

    where = f"s3://{s3_bucket}/reports/drift/{run.folder.name}/report.html"
    assert run.full_report == where
    s3 = boto3.client("s3", endpoint_url=moto_endpoint)
    stored = s3.get_object(Bucket=s3_bucket, Key=f"reports/drift/{run.folder.name}/report.html")["Body"].read()
    assert stored.decode() == run.result.html
    s3.head_object(Bucket=s3_bucket, Key=f"reports/drift/{run.folder.name}/summary.html")
    message = mail_env.messages[0]
    assert where in message.get_body(("html",)).get_content() and where in message.get_body(("plain",)).get_content()
    assert where in _only_attachment(message).get_content()


def test_an_html_attachment_is_named_html() -> None:
    with pytest.raises(ValueError, match=r"ends in \.html"):
        mailer.html_attachment("<p>x</p>", "report.html.gz")
    budget = mailer.attachment_budget(1_000_000)
    assert mailer.html_attachment("x" * budget, "a.html", 1_000_000) is not None
    assert mailer.html_attachment("x" * (budget + 1), "a.html", 1_000_000) is None
