"""`aicash monitor drift` as a function: reference from the registry, window from the prediction log, Evidently
report to disk (and S3), a row in `drift_reports`, retraining and mail when drift is detected.

The mail attaches a plain `.html` that opens with one click: Evidently's report when it fits the mail's budget,
else the reduced report (`summary.html`), saying so; the body gives where the full report is kept."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine, update

from aicash.db.engine import session_scope
from aicash.db.models import DriftReport
from aicash.monitoring import mailer, report_store
from aicash.monitoring.drift import DRIFT_SHARE, MAX_CURRENT_ROWS, DriftResult
from aicash.monitoring.retrain import RetrainError, Submitter, submit_retraining, training_arguments
from aicash.monitoring.window import Window, load_predictions
from aicash.registry import current_production, load_artifacts, store_for
from aicash.settings import Settings
from aicash.training.artifact_files import REFERENCE_FILE, MissingArtifactError, read_reference
from monitoring.drift_report import brief_report_html, run_drift


class DriftJobInputError(ValueError):
    """Nothing to compare: no production model, no reference sample or no predictions in the window."""


@dataclass
class DriftRun:
    """What one run did; `mail_error` / `retrain_error` are set when those steps failed (the report is kept)."""

    result: DriftResult
    model_version: str
    window: Window
    folder: Path
    s3_uri: str | None
    report_id: int
    full_report: str  # where the full Evidently report is kept: its S3 URI in cluster mode, else its local path
    mailed: bool = False
    mail_note: str | None = None
    mail_error: str | None = None
    message_bytes: int = 0
    retrain_run: str | None = None
    retrain_error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def location(self) -> str:
        return self.s3_uri or str(self.folder)


def _reference(engine: Engine, settings: Settings, version: str) -> pd.DataFrame:
    """The production version's reference sample, downloaded and verified through the registry."""
    dest = settings.aicash_home / "cache" / "models" / version
    folder = load_artifacts(engine, store_for(settings), version, dest)
    try:
        return read_reference(folder)
    except MissingArtifactError:
        raise DriftJobInputError(
            f"production model {version} has no {REFERENCE_FILE} among its artifacts: drift needs the training "
            "reference sample; retrain it with the current pipeline (it saves one) and promote the new version"
        ) from None


def run_drift_job(
    engine: Engine,
    settings: Settings,
    since: timedelta,
    *,
    email: bool = False,
    retrain: bool = False,
    submit: Submitter | None = None,
    drift_share: float = DRIFT_SHARE,
    max_current_rows: int = MAX_CURRENT_ROWS,
    now: datetime | None = None,
) -> DriftRun:
    """Compare, write, record; then retrain (with `retrain` and a `submit`) and mail, when drift is detected
    (mail always with `email`). Bad input raises `DriftJobInputError` or `MailConfigError` before any work."""
    production = current_production(engine)
    if production is None:
        raise DriftJobInputError("no production model: drift is measured against the production model's reference "
                                 "sample; promote one with `aicash models promote VERSION --traffic 100`")
    smtp = mailer.SmtpConfig.from_settings(settings) if email else None
    window = Window.last(since, now)
    current = load_predictions(engine, window)
    if current.empty:
        raise DriftJobInputError(f"no logged predictions in the window {window} (--since {_span(since)}): widen "
                                 "it (e.g. --since 7d) or check that the inference service logs predictions")
    reference, metrics = _reference(engine, settings, production.version), dict(production.metrics)
    result = run_drift(reference, current, production_version=production.version, metrics=metrics,
                       drift_share=drift_share, max_current_rows=max_current_rows,
                       metadata={"model_version": production.version, "window": str(window)})
    created = datetime.now(UTC)
    folder = report_store.report_folder(settings, created)
    full_report = report_store.report_location(settings, folder)
    brief = brief_report_html(result, reference, current, metrics=metrics, model_version=production.version,
                              window=str(window), full_report=full_report)
    report_store.write_report(folder, result.html, result.snapshot_json,
                              {"model_version": production.version, "window": str(window), **result.summary()},
                              brief_html=brief)
    s3_uri = report_store.upload_report(settings, folder)
    run = DriftRun(result, production.version, window, folder, s3_uri,
                   _record(engine, result, production.version, window, created, s3_uri or str(folder)), full_report)
    if result.detected and retrain:
        _retrain(engine, run, metrics, current, submit)
    if result.detected or email:
        _mail(engine, settings, run, smtp)
    return run


def _span(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:g}d" if hours >= 48 and hours % 24 == 0 else f"{hours:g}h"


def _record(engine: Engine, result: DriftResult, version: str, window: Window, at: datetime, where: str) -> int:
    with session_scope(engine) as session:
        row = DriftReport(
            created_at=at, model_version=version, window_start=window.start, window_end=window.end,
            current_rows=result.current_rows, reference_rows=result.reference_rows,
            drift_share_threshold=result.drift_share, drifted_share=result.drifted_share, detected=result.detected,
            signal_drifted=None if result.signal is None else result.signal_drifted,
            scores={c.column: c.score for c in [*result.features, *([result.signal] if result.signal else [])]},
            location=where, emailed=False,
        )
        session.add(row)
        session.flush()
        return int(row.id)


def _retrain(engine: Engine, run: DriftRun, metrics: dict, current: pd.DataFrame, submit: Submitter | None) -> None:
    if submit is None:
        run.retrain_error = "no pipeline submitter available"
        return
    try:
        run.retrain_run = submit_retraining(engine, submit, training_arguments(metrics, current),
                                            run.result.headline(), run.location)
    except RetrainError as exc:
        run.retrain_error = str(exc)
        return
    with engine.begin() as conn:
        conn.execute(update(DriftReport).where(DriftReport.id == run.report_id).values(retrain_run=run.retrain_run))


def _mail(engine: Engine, settings: Settings, run: DriftRun, smtp: mailer.SmtpConfig | None) -> None:
    if smtp is None:
        try:
            smtp = mailer.SmtpConfig.from_settings(settings)
        except mailer.MailConfigError as exc:
            run.mail_note = f"not mailed: {exc}"
            return
    attachment = mail_attachment(run)
    if attachment is None:
        run.notes.append(f"neither report fits the mail's budget: the mail gives where it is ({run.full_report})")
    message = mailer.build_message(smtp, subject(run), summary_html(run, attachment), summary_text(run),
                                   [attachment] if attachment else [])
    run.message_bytes = len(message.as_bytes())
    try:
        mailer.send(smtp, message)
    except mailer.MailDeliveryError as exc:
        run.mail_error = f"{exc}; the report is kept at {run.location}"
        return
    run.mailed = True
    with engine.begin() as conn:
        conn.execute(update(DriftReport).where(DriftReport.id == run.report_id).values(emailed=True))


# -- the mail ---------------------------------------------------------------------------------------------------
FULL_STEM, BRIEF_STEM = "drift-report", "drift-summary"


def mail_attachment(run: DriftRun, max_message_bytes: int | None = None) -> mailer.Attachment | None:
    """Evidently's report as `drift-report-<stamp>.html` when it fits the mail's budget, else the reduced report
    as `drift-summary-<stamp>.html`; None when neither fits."""
    full = mailer.html_attachment(run.result.html, f"{FULL_STEM}-{run.folder.name}.html", max_message_bytes)
    if full is not None:
        return full
    brief = (run.folder / report_store.BRIEF_FILE).read_text(encoding="utf-8")
    return mailer.html_attachment(brief, f"{BRIEF_STEM}-{run.folder.name}.html", max_message_bytes)


def _attached(run: DriftRun, attachment: mailer.Attachment | None) -> str:
    """What the mail carries, and why, for its body."""
    full_mb = len(run.result.html.encode("utf-8")) / 1e6
    where = f"kept at {run.full_report}"
    if attachment is None:
        return (f"nothing is attached: the report is over the mail's budget of {mailer.MAX_MESSAGE_BYTES / 1e6:g} MB; "
                f"the full Evidently report is {where}")
    if attachment.filename.startswith(FULL_STEM):
        return f"the full Evidently report is attached ({attachment.filename}, opens in a browser) and {where}"
    return (f"attached: a summary report ({attachment.filename}, {len(attachment.content) / 1e3:.0f} kB: every "
            f"column's test and distributions, opens in a browser). The full Evidently report ({full_mb:.1f} MB, "
            f"its JavaScript inline) is over the mail's budget of {mailer.MAX_MESSAGE_BYTES / 1e6:g} MB; it is {where}")


def subject(run: DriftRun) -> str:
    r = run.result
    if r.detected:
        what = f"{len(r.drifted_features)} of {len(r.features)} features"
        what += " and the predicted signal" if r.signal_drifted else ""
        return f"[aicash] Drift detected: {what} (signal-lstm {run.model_version})"
    return f"[aicash] Drift report: no drift (signal-lstm {run.model_version})"


def _shift(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}"


def _feature_rows(run: DriftRun) -> str:
    rows = []
    columns = sorted(run.result.features, key=lambda c: (not c.drifted, -c.score))
    if run.result.signal is not None:
        columns.insert(0, run.result.signal)
    for c in columns:
        style = ' style="color:#b00020;font-weight:bold"' if c.drifted else ""
        rows.append(f"<tr{style}><td>{html.escape(c.column)}</td><td>{'yes' if c.drifted else 'no'}</td>"
                    f"<td>{c.score:.3f}</td><td>{c.threshold:g}</td><td>{_shift(c.mean_shift)}</td>"
                    f"<td>{html.escape(c.method)}</td></tr>")
    return "\n".join(rows)


def summary_html(run: DriftRun, attachment: mailer.Attachment | None) -> str:
    r = run.result
    drifted = ", ".join(f"{html.escape(c.column)} ({c.score:.2f}; mean {_shift(c.mean_shift)} sd)"
                        for c in r.drifted_features) or "none"
    sampled = (f" (all read; Evidently compared a uniform sample of {r.compared_rows:,})"
               if r.compared_rows < r.current_rows else "")
    extra = []
    if r.signal is not None:
        extra.append(f"<li>Predicted signals in the window: {html.escape(str(r.current_signals))}; "
                     f"reference: {html.escape(r.signal_reference)}</li>")
    if run.retrain_run:
        extra.append(f"<li>Retraining submitted: run <code>{html.escape(run.retrain_run)}</code></li>")
    if run.retrain_error:
        extra.append(f"<li>Retraining NOT submitted: {html.escape(run.retrain_error)}</li>")
    return f"""<html><body style="font-family:sans-serif">
<h2>{html.escape(r.headline().capitalize())}</h2>
<ul>
<li>Model: signal-lstm <b>{html.escape(run.model_version)}</b> (production)</li>
<li>Window: {html.escape(str(run.window))}, {r.current_rows:,} logged predictions{sampled}; reference: \
{r.reference_rows:,} training rows</li>
<li>Rule: drift when at least {r.drift_share:.0%} of the {len(r.features)} input features drift \
(measured {r.drifted_share:.0%}) or the predicted signal distribution drifts</li>
<li>Drifted features (score; mean shift over the whole window, in reference standard deviations): {drifted}</li>
{''.join(extra)}
<li>Report: {html.escape(_attached(run, attachment))}</li>
</ul>
<table border="1" cellpadding="4" cellspacing="0" style="border-collapse:collapse">
<tr><th>column</th><th>drifted</th><th>score</th><th>threshold</th><th>mean shift (sd)</th><th>method</th></tr>
{_feature_rows(run)}
</table>
</body></html>"""


def summary_text(run: DriftRun) -> str:
    r = run.result
    lines = [r.headline(), f"model: signal-lstm {run.model_version}", f"window: {run.window}",
             f"predictions: {r.current_rows}", f"full report: {run.full_report}", "", "drifted:"]
    lines += [f"  {c.describe()}" for c in r.drifted_features] or ["  none"]
    if r.signal is not None:
        lines.append(f"signal: {r.signal.describe()} drifted={r.signal.drifted}")
    if run.retrain_run:
        lines.append(f"retraining submitted: {run.retrain_run}")
    return "\n".join(lines) + "\n"
