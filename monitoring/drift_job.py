"""`aicash monitor drift` as a function: reference from the registry, window from the prediction log, Evidently
report to disk (and S3), a row in `drift_reports`, retraining and mail when drift is detected."""

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
from monitoring.drift_report import run_drift


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
    folder = report_store.write_report(report_store.report_folder(settings, created), result.html,
                                       result.snapshot_json, {"model_version": production.version,
                                                              "window": str(window), **result.summary()})
    s3_uri = report_store.upload_report(settings, folder)
    run = DriftRun(result, production.version, window, folder, s3_uri,
                   _record(engine, result, production.version, window, created, s3_uri or str(folder)))
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
    attachment = mailer.report_attachment(run.result.html, f"drift-report-{run.folder.name}")
    if attachment is None:
        run.notes.append("the report is too large to attach even gzipped: the mail links to it")
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
    attached = ("the full Evidently report is attached" + (" gzipped: decompress it, then open it in a browser"
                if attachment and attachment.filename.endswith(".gz") else "")) if attachment else "no attachment"
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
<li>Report: {html.escape(run.location)}; {attached}</li>
</ul>
<table border="1" cellpadding="4" cellspacing="0" style="border-collapse:collapse">
<tr><th>column</th><th>drifted</th><th>score</th><th>threshold</th><th>mean shift (sd)</th><th>method</th></tr>
{_feature_rows(run)}
</table>
</body></html>"""


def summary_text(run: DriftRun) -> str:
    r = run.result
    lines = [r.headline(), f"model: signal-lstm {run.model_version}", f"window: {run.window}",
             f"predictions: {r.current_rows}", f"report: {run.location}", "", "drifted:"]
    lines += [f"  {c.describe()}" for c in r.drifted_features] or ["  none"]
    if r.signal is not None:
        lines.append(f"signal: {r.signal.describe()} drifted={r.signal.drifted}")
    if run.retrain_run:
        lines.append(f"retraining submitted: {run.retrain_run}")
    return "\n".join(lines) + "\n"
