"""`aicash monitor`: drift reports (mailed), live outcomes, alert checks and metrics, canary judgement.

Exit codes: 0 done (for `check`: nothing fires); 1 something fires (`check`) or a step failed that is not the
caller's input (SMTP unreachable, S3 upload, pipeline submission): the report stays on disk and the message says
where; 2 bad input (no production model, empty window, bad option), with the fix.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from aicash.cli.common import console, err_console, fail, settings_of
from aicash.cli.db import ready_engine

app = typer.Typer(no_args_is_help=True)

FIRING = 1


def _since(text: str, option: str = "--since"):  # type: ignore[no-untyped-def]
    from aicash.monitoring.window import BadWindowError, parse_duration

    try:
        return parse_duration(text, option)
    except BadWindowError as exc:
        fail(str(exc))


def _pipeline_submitter(settings, kfp_host: str | None):  # type: ignore[no-untyped-def]
    """The drift job's submitter: `pipelines.launch` on the KFP server (`--kfp-host`, else KFP_HOST) in the KFP_IMAGE
    platform image, or, with no server, the pipeline run here and now; a local run that fails is a RetrainError."""
    from aicash.monitoring.retrain import RetrainError
    from pipelines.launch import RunFailedError, launch

    def submit(engine, name: str, arguments: dict) -> str:  # type: ignore[no-untyped-def]
        try:
            return launch(engine, settings, name, arguments, host=kfp_host).describe()
        except RunFailedError as exc:
            raise RetrainError(str(exc)) from exc

    return submit


@app.command("drift")
def drift(
    ctx: typer.Context,
    since: str = typer.Option("24h", "--since", help="Window of logged predictions to compare: 24h, 7d, 30m, 2w."),
    email: bool = typer.Option(False, "--email", help="Mail the report even when no drift is detected."),
    retrain: bool = typer.Option(False, "--retrain", help="Submit the training pipeline when drift is detected."),
    drift_share: float = typer.Option(0.25, "--drift-share", min=0.01, max=1.0,
                                      help="Share of input features that must drift to flag drift."),
    kfp_host: str | None = typer.Option(None, "--kfp-host",
                                        help="KFP API for --retrain; default KFP_HOST, else run locally."),
) -> None:
    """Evidently drift report: the production model's reference sample vs. recent logged predictions."""
    from aicash.monitoring.drift import DriftInputError
    from aicash.monitoring.mailer import MailConfigError
    from aicash.registry import ArtifactError
    from monitoring.drift_job import DriftJobInputError, run_drift_job

    settings = settings_of(ctx)
    window = _since(since)
    engine = ready_engine(ctx)
    submit = _pipeline_submitter(settings, kfp_host) if retrain else None
    try:
        run = run_drift_job(engine, settings, window, email=email, retrain=retrain, submit=submit,
                            drift_share=drift_share)
    except (DriftJobInputError, DriftInputError, MailConfigError) as exc:
        fail(str(exc))
    except ArtifactError as exc:
        fail(f"the production model's artifacts could not be loaded: {exc}", code=1)
    r = run.result
    style = "bold red" if r.detected else "bold green"
    console.print(f"[{style}]{r.headline()}[/] (signal-lstm {run.model_version}, {r.current_rows:,} predictions, "
                  f"{run.window})", highlight=False)
    for c in r.drifted_features:
        console.print(f"  drifted {c.describe()}", highlight=False)
    if r.signal is not None:
        verdict = "DRIFTED" if r.signal.drifted else "stable"
        console.print(f"  predicted {r.signal.describe()} {verdict}", highlight=False)
    console.print(f"report: {run.folder / 'report.html'}", highlight=False, soft_wrap=True)
    if run.s3_uri:
        console.print(f"uploaded: {run.s3_uri}", highlight=False, soft_wrap=True)
    if run.retrain_run:
        console.print(f"retraining submitted: {run.retrain_run}", highlight=False)
    if run.mailed:
        console.print(f"mailed to {settings.alert_email_to} ({run.message_bytes / 1e6:.2f} MB)", highlight=False)
    elif run.mail_note:
        console.print(run.mail_note, highlight=False)
    errors = [e for e in (run.retrain_error and f"retraining not submitted: {run.retrain_error}", run.mail_error) if e]
    if errors:
        fail("; ".join(errors), code=1)


@app.command("outcomes")
def outcomes(
    ctx: typer.Context,
    days: int = typer.Option(7, "--days", min=1, max=3650, help="Days of live metrics to show."),
    lookback_days: int = typer.Option(30, "--lookback-days", min=1, max=3650,
                                      help="Evaluate pending predictions made within this many days."),
) -> None:
    """Join predictions whose horizon has passed with the candles; show live accuracy and win rate per day."""
    from datetime import UTC, datetime, timedelta

    from rich.table import Table

    from aicash.monitoring.outcomes import daily_metrics, update_outcomes

    engine = ready_engine(ctx)
    update = update_outcomes(engine, timedelta(days=lookback_days))
    console.print(f"evaluated {update.evaluated} predictions; {update.pending} still wait for their horizon "
                  "or for candles")
    frame = daily_metrics(engine, (datetime.now(UTC) - timedelta(days=days - 1)).date())
    if frame.empty:
        console.print(f"no live metrics in the last {days} days: predictions need candles past their horizon "
                      "(`aicash data ingest`)")
        return
    table = Table(title=f"live metrics, last {days} days (a decision: one per version, bar and signal)")
    for column in ("day", "model version", "decisions", "accuracy", "trades", "win rate", "mean trade return"):
        text = column in ("day", "model version")
        table.add_column(column, justify="left" if text else "right", no_wrap=text)
    for row in frame.itertuples():
        table.add_row(str(row.day), row.model_version, str(row.decisions), f"{row.accuracy:.3f}", str(row.trades),
                      "-" if row.win_rate is None or row.win_rate != row.win_rate else f"{row.win_rate:.3f}",
                      "-" if row.mean_trade_return is None or row.mean_trade_return != row.mean_trade_return
                      else f"{row.mean_trade_return:+.5f}")
    console.print(table)


def _latency(urls: list[str], sample_seconds: float):  # type: ignore[no-untyped-def]
    """The /predict histogram summed over the URLs (the delta over `sample_seconds` when > 0), or an error text."""
    from aicash.monitoring.alerts import PREDICT_ENDPOINT
    from aicash.monitoring.scrape import LATENCY_METRIC, ScrapeError, fetch, histogram

    def scrape():  # type: ignore[no-untyped-def]
        return histogram([fetch(u) for u in urls], LATENCY_METRIC, {"endpoint": PREDICT_ENDPOINT})

    try:
        first = scrape()
        if sample_seconds > 0:
            time.sleep(sample_seconds)
            return scrape().minus(first), None
        return first, None
    except ScrapeError as exc:
        return None, f"latency not evaluated: {exc}"


def _feature_ages(urls: list[str]):  # type: ignore[no-untyped-def]
    """The services' feature ages (`aicash_feature_age_seconds` with its limit), or an error text."""
    from aicash.monitoring.scrape import ScrapeError, feature_ages, fetch

    try:
        return feature_ages([fetch(u) for u in urls]), None
    except ScrapeError as exc:
        return None, f"feature ages not evaluated: {exc}"


def _sync_kfp_runs(engine, host: str) -> None:  # type: ignore[no-untyped-def]
    """Read the open KFP runs' outcomes before the rules look at `training_runs` (`aicash pipeline status`);
    a failure is reported on stderr and never stops the check: the rules then see the runs as last recorded."""
    from rich.text import Text

    try:
        from pipelines.status import sync

        done = sync(engine, host)
    except Exception as exc:  # KFP down, refusing, or kfp not installed: the other rules still matter
        err_console.print(Text(f"warning: KFP runs not synced from {host}: {exc}; the training rule sees them as "
                               f"last recorded (`aicash pipeline status --host {host}` retries)"),
                          highlight=False, soft_wrap=True)
        return
    for missing in done.unknown:
        err_console.print(Text(f"warning: {missing}; its row stays as it was"), highlight=False, soft_wrap=True)
    if done.runs:
        closed = [f"{r.run_id} {r.status}" for r in done.runs if r.status != "running"]
        console.print(f"KFP runs synced from {host}: {len(done.runs)}" + (f" ({', '.join(closed)})" if closed else ""),
                      highlight=False)


def _database_status(ctx: typer.Context):  # type: ignore[no-untyped-def]
    """The monitor's snapshot of the database (KFP runs synced and due outcomes joined first) and None, or, when the
    database is unreachable, None and the error naming it: the rules that need no database are evaluated anyway."""
    from sqlalchemy.exc import DBAPIError

    from aicash.db.engine import is_unreachable, unreachable_message
    from aicash.monitoring.outcomes import update_outcomes
    from aicash.monitoring.status import collect_status

    settings = settings_of(ctx)
    try:
        engine = ready_engine(ctx)
        if settings.kfp_host:
            _sync_kfp_runs(engine, settings.kfp_host)
        update_outcomes(engine)
        return collect_status(engine, settings), None
    except DBAPIError as exc:
        if not is_unreachable(exc):
            raise
        return None, unreachable_message(exc, settings.sqlalchemy_url)


@app.command("check")
def check(
    ctx: typer.Context,
    metrics_url: list[str] = typer.Option(None, "--metrics-url",
                                          help="Service /metrics (repeat per replica); default INFERENCE_API_URL."),
    no_latency: bool = typer.Option(False, "--no-latency",
                                    help="Skip the rules that scrape the service (latency, feature age)."),
    sample_seconds: float = typer.Option(0.0, "--sample-seconds", min=0.0, max=600.0,
                                         help="Judge latency over requests between two scrapes this far apart "
                                              "(0: since the service started)."),
    email: bool = typer.Option(False, "--email", help="Mail the ML team when something fires."),
    textfile: Path | None = typer.Option(None, "--textfile", help="Also write the gauges for node-exporter here."),
) -> None:
    """Evaluate the alert rules (monitoring/alerts.yml) now, after reading KFP runs' outcomes when KFP_HOST is set;
    exit 1 when any fires or cannot be evaluated."""
    from rich.table import Table

    from aicash.monitoring import alerts
    from aicash.monitoring.mailer import MailConfigError, MailDeliveryError, SmtpConfig
    from aicash.monitoring.scrape import BadMetricsUrlError, check_url
    from aicash.monitoring.status import write_textfile

    settings = settings_of(ctx)
    urls = [] if no_latency else (metrics_url or [settings.inference_api_url.rstrip("/") + "/metrics"])
    try:
        urls = [check_url(u) for u in urls]
        smtp = SmtpConfig.from_settings(settings) if email else None
    except (BadMetricsUrlError, MailConfigError) as exc:
        fail(str(exc))
    status, database_error = _database_status(ctx)
    latency, latency_error = _latency(urls, sample_seconds) if urls else (None, None)
    ages, ages_error = _feature_ages(urls) if urls else (None, None)
    states = alerts.evaluate(alerts.Inputs(status, latency, latency_error, ages, ages_error, database_error))
    table = Table("rule", "state", "detail", title="aicash alert rules")
    for s in states:
        colour = {"ok": "green", "firing": "bold red", "error": "yellow"}[s.state]
        table.add_row(s.rule, f"[{colour}]{s.state}[/]", s.detail)
    console.print(table)
    if textfile is not None:
        console.print(f"gauges written to {write_textfile(status, textfile)}", highlight=False)
    firing = [s for s in states if s.firing]
    if firing and smtp is not None:
        from aicash.monitoring.mailer import build_message, send

        try:
            send(smtp, build_message(smtp, *alerts.mail_parts(firing)))
        except MailDeliveryError as exc:
            fail(f"{exc}; the alerts above were not mailed", code=FIRING)
        console.print(f"mailed {len(firing)} alert(s) to {settings.alert_email_to}", highlight=False)
    if firing:
        raise typer.Exit(FIRING)


@app.command("metrics")
def metrics(
    ctx: typer.Context,
    port: int | None = typer.Option(None, "--port", min=1, max=65535,
                                    help="Serve the gauges on this port (rebuilt on every scrape) until stopped."),
    textfile: Path | None = typer.Option(None, "--textfile", help="Write the gauges to this file once and exit."),
    address: str = typer.Option("0.0.0.0", "--address", help="Address to listen on with --port."),  # noqa: S104
) -> None:
    """Export live accuracy, win rate, drift and training-failure gauges for Prometheus."""
    from prometheus_client import CollectorRegistry, start_http_server

    from aicash.monitoring.outcomes import update_outcomes
    from aicash.monitoring.status import StatusCollector, collect_status, write_textfile

    if (port is None) == (textfile is None):
        fail("give exactly one of --port N (serve) or --textfile PATH (write once)")
    settings = settings_of(ctx)
    engine = ready_engine(ctx)
    update_outcomes(engine)
    if textfile is not None:
        console.print(f"gauges written to {write_textfile(collect_status(engine, settings), textfile)}",
                      highlight=False)
        return
    assert port is not None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(engine, settings))
    server, thread = start_http_server(port, addr=address, registry=registry)
    console.print(f"serving monitor gauges on http://{address}:{port}/metrics (Ctrl-C stops)", highlight=False)
    try:
        while thread.is_alive():
            time.sleep(60)
            _join_outcomes(engine, settings.sqlalchemy_url)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()


def _join_outcomes(engine, url: str) -> None:  # type: ignore[no-untyped-def]
    """The exporter's periodic `update_outcomes`: an outage is a warning and the exporter goes on serving (its
    gauges then say `aicash_database_up 0`, which `AicashDatabaseUnreachable` reads)."""
    from rich.text import Text
    from sqlalchemy.exc import DBAPIError

    from aicash.db.engine import is_unreachable, unreachable_message
    from aicash.monitoring.outcomes import update_outcomes

    try:
        update_outcomes(engine)
    except DBAPIError as exc:
        if not is_unreachable(exc):
            raise
        err_console.print(Text(f"warning: {unreachable_message(exc, url)}"), highlight=False, soft_wrap=True)


@app.command("canary")
def canary(
    ctx: typer.Context,
    min_samples: int = typer.Option(200, "--min-samples", min=10,
                                    help="Evaluated decisions each of canary and production need first."),
    alpha: float = typer.Option(0.05, "--alpha", min=0.0001, max=0.5, help="Significance level, split over metrics."),
    apply_: bool = typer.Option(False, "--apply", help="Promote or roll back as judged (default: only report)."),
) -> None:
    """Judge the canary on live win rate, accuracy and latency against production; promote or end it."""
    from aicash.monitoring import canary as judge_canary
    from aicash.monitoring.outcomes import update_outcomes

    engine = ready_engine(ctx)
    update_outcomes(engine)
    try:
        canary_arm, production_arm, since = judge_canary.gather(engine)
    except judge_canary.NoCanaryError as exc:
        fail(str(exc))
    verdict = judge_canary.judge(canary_arm, production_arm, since, min_samples=min_samples, alpha=alpha)
    console.print(f"canary {canary_arm.version} vs production {production_arm.version} since "
                  f"{since:%Y-%m-%d %H:%M} UTC", highlight=False)
    for arm in (canary_arm, production_arm):
        f = arm.figures
        console.print(f"  {arm.version}: {f.decisions} decisions, accuracy "
                      f"{'-' if f.accuracy is None else f'{f.accuracy:.3f}'}, {f.trades} trades, win rate "
                      f"{'-' if f.win_rate is None else f'{f.win_rate:.3f}'}, p95 latency "
                      f"{'-' if arm.p95_latency_ms is None else f'{arm.p95_latency_ms:.1f} ms'}", highlight=False)
    console.print(f"[bold]{verdict.action}[/]: " + "\n  ".join(verdict.reasons), highlight=False)
    if not apply_:
        if verdict.action in ("promote", "rollback"):
            console.print("dry run: add --apply to carry it out", highlight=False)
        return
    result = judge_canary.apply(engine, verdict)
    console.print(result.message, highlight=False)


@app.command("rules")
def rules() -> None:
    """Print the Prometheus alerting rules (what monitoring/alerts.yml holds)."""
    from aicash.monitoring.alerts import rules_yaml

    typer.echo(rules_yaml(), nl=False)
