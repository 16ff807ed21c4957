"""Launching a training run, the one way: here with KFP's local runner or on a KFP cluster, always recorded in
`training_runs`, with KFP's and the run's errors wrapped in `LaunchError`.

`aicash pipeline run/submit/schedule`, the drift job's `--retrain` and the service's `POST /train` all start runs
through this module. A run made here is recorded `running`, then `succeeded` (linked to the version it registered)
or `failed` with its cause. A run handed to KFP is recorded first, `submitting` (a recurring run `scheduling`), with
no KFP id, so a run KFP accepts is never untracked (and a failed record submits nothing); once KFP answers it
becomes `submitted` (`scheduled`) with the id the server gave, and `pipelines.status` later reads its outcome from
KFP. A server that refuses or does not answer leaves the row `failed` with KFP's error (kept, not deleted: the
attempt and its audit entry stay traceable).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine

from aicash.settings import Settings
from aicash.training.runs import AuditEntry, finish_run, kfp_accepted, record_kfp_attempt, start_run

log = logging.getLogger(__name__)

LOCAL_PIPELINE_ROOT = "kfp"  # under AICASH_HOME: the local runner's artifacts and the child runs' logs
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # KFP's local runner colours its messages
CAUSE = re.compile(r"^\s*((?:[A-Za-z_][\w.]*)(?:Error|Exception)): (.+)$")

# Runs pipeline NAME with ARGUMENTS here for training run RUN_ID; raises on failure.
Executor = Callable[[int, str, dict[str, Any]], Any]


class LaunchError(RuntimeError):
    """A training run could not be started, or it failed; the message names the cause."""


class KfpUnavailableError(LaunchError):
    """The KFP server refused the run or did not answer; its training run (`run_id`) is recorded `failed`."""

    def __init__(self, host: str, exc: Exception, run_id: int | None = None) -> None:
        super().__init__(f"KFP at {host} refused or did not answer: {type(exc).__name__}: {str(exc)[:300]}")
        self.host, self.run_id = host, run_id


class RunFailedError(LaunchError):
    """A run made here failed; it is recorded as failed with `cause`."""

    def __init__(self, name: str, run_id: int, cause: str) -> None:
        super().__init__(f"the local {name} run failed (training run {run_id} recorded as failed): {cause}")
        self.name, self.run_id, self.cause = name, run_id, cause


class PipelineFailedError(RuntimeError):
    """A child process running a pipeline exited non-zero; the message gives the failing step's own error."""


class RunTimedOutError(PipelineFailedError):
    """A child process ran past TRAINING_TIMEOUT_SECONDS and was killed, with every task process it had started."""


@dataclass(frozen=True)
class Launched:
    """A started run: its `training_runs` id and status, where it runs, and what KFP or the run gave back."""

    run_id: int
    status: Literal["running", "succeeded", "submitted", "scheduled"]
    mode: Literal["local", "kfp"]
    kfp_id: str | None = None  # the KFP run id (submitted) or recurring run id (scheduled)
    model_version: str | None = None

    def describe(self) -> str:
        """How the drift report and its audit entry name the run: KFP's id, or the local run and its version."""
        if self.kfp_id is not None:
            return self.kfp_id
        return f"local training run {self.run_id}, registered {self.model_version or 'nothing'}"[:128]


def pipeline_root(settings: Settings) -> Path:
    """Where the local runner keeps its artifacts (and the child runs their logs)."""
    return settings.aicash_home / LOCAL_PIPELINE_ROOT


def run_here(
    engine: Engine, settings: Settings, name: str, arguments: dict[str, Any], *,
    execute: Executor | None = None, run_id: int | None = None,
) -> Launched:
    """Run the pipeline here to its end and record it; `run_id` continues a run already recorded `running`
    (the service answers with it before the run starts). Raises `RunFailedError` after recording the failure.
    By default the run is a child process that shows its log here and is killed after TRAINING_TIMEOUT_SECONDS."""
    execute = execute or ChildProcess(settings, echo=True)
    run_id = start_run(engine, name, arguments) if run_id is None else run_id
    try:
        execute(run_id, name, arguments)
    except BaseException as exc:  # every failure, an interrupt included, must close the run
        if isinstance(exc, PipelineFailedError):
            error = cause = str(exc)
        else:
            cause = f"{type(exc).__name__}: {exc}"
            error = ANSI.sub("", f"{cause}\n{traceback.format_exc(limit=3)}")
        finish_run(engine, run_id, "failed", error=error)
        if not isinstance(exc, Exception):
            raise
        raise RunFailedError(name, run_id, cause) from exc
    version = finish_run(engine, run_id, "succeeded")
    return Launched(run_id, "succeeded", "local", model_version=version)


def submit(
    engine: Engine, settings: Settings, name: str, arguments: dict[str, Any], *, host: str, image: str | None = None,
    audit: AuditEntry | None = None,
) -> Launched:
    """Record the run (`submitting`, with `audit` in the same transaction), create it on the KFP server at `host`
    in the platform image (default KFP_IMAGE), then store KFP's id (`submitted`). Raises ImportError where kfp is
    not installed (nothing recorded), `KfpUnavailableError` when the server fails (the run recorded `failed`)."""
    from pipelines import runner

    return _on_kfp(engine, name, arguments, host, None, audit,
                   lambda: runner.submit(name, host, arguments, image=image or settings.kfp_image,
                                         timeout_seconds=settings.training_timeout_seconds))


def schedule(
    engine: Engine, settings: Settings, name: str, arguments: dict[str, Any], *, host: str, cron: str,
    image: str | None = None, audit: AuditEntry | None = None,
) -> Launched:
    """Record a recurring run (`scheduling`), create it on the KFP server at `host` (six-field cron), then store
    KFP's id (`scheduled`); as `submit`."""
    from pipelines import runner

    return _on_kfp(engine, name, arguments, host, cron, audit,
                   lambda: runner.schedule(name, host, cron, arguments, image=image or settings.kfp_image,
                                           timeout_seconds=settings.training_timeout_seconds))


def _on_kfp(engine: Engine, name: str, arguments: dict[str, Any], host: str, cron: str | None,
            audit: AuditEntry | None, create: Callable[[], str]) -> Launched:  # fmt: skip
    """Record first, then ask KFP: a failed record asks KFP nothing; a refusal closes the row `failed`."""
    import kfp  # noqa: F401 - where kfp is missing, the ImportError comes before anything is recorded

    run_id = record_kfp_attempt(engine, name, arguments, host=host, cron=cron, audit=audit)
    try:
        kfp_id = create()
    except Exception as exc:
        refused = KfpUnavailableError(host, exc, run_id)
        finish_run(engine, run_id, "failed", error=str(refused))
        raise refused from exc
    try:
        status = kfp_accepted(engine, run_id, kfp_id)
    except Exception:
        # KFP runs it, but its id is not stored: the row stays open without it, so say which run it is
        log.error("KFP at %s accepted training run %s as %s, but its id was not recorded", host, run_id, kfp_id)
        raise
    return Launched(run_id, "scheduled" if status == "scheduled" else "submitted", "kfp", kfp_id=kfp_id)


@dataclass(frozen=True)
class Reconciled:
    """What `reconcile_schedule` did: `created`, `replaced` (a new recurring run, the stale ones deleted),
    `unchanged`, `deleted` (turned off) or `absent` (off, and there was nothing to delete)."""

    action: Literal["created", "replaced", "unchanged", "deleted", "absent"]
    recurring_run_id: str | None = None  # the one that now runs the schedule
    run_id: int | None = None  # its `training_runs` row, when it was created now
    deleted: tuple[str, ...] = ()


def reconcile_schedule(
    engine: Engine, settings: Settings, name: str, arguments: dict[str, Any], *, host: str, display_name: str,
    cron: str | None, image: str | None = None,
) -> Reconciled:
    """Make the KFP server at `host` hold exactly the declared recurring run `display_name` (with `cron` None:
    none), idempotently. A current one is kept; otherwise a new one is created and recorded as `schedule` does,
    then the stale ones are deleted and their `scheduled` rows closed `cancelled`. Raises `KfpUnavailableError`."""
    from pipelines import recurring

    try:
        found = recurring.find(host, display_name)
    except Exception as exc:
        raise KfpUnavailableError(host, exc) from exc
    keep: str | None = None
    created: Launched | None = None
    if cron is not None:
        spec = recurring.RecurringSpec(display_name, name, cron, arguments, image or settings.kfp_image,
                                       settings.training_timeout_seconds)
        package = spec.package()
        fingerprint = spec.fingerprint(package, cron, arguments)
        keep = next((f.recurring_run_id for f in found if f.matches(fingerprint)), None)
        if keep is None:
            created = _on_kfp(engine, name, arguments, host, cron, None,
                              lambda: recurring.create(host, spec, package, fingerprint))
            keep = created.kfp_id
    stale = tuple(f.recurring_run_id for f in found if f.recurring_run_id != keep)
    for recurring_run_id in stale:
        try:
            recurring.delete(host, recurring_run_id)
        except Exception as exc:
            raise KfpUnavailableError(host, exc) from exc
        _close_schedule(engine, recurring_run_id, f"recurring run {recurring_run_id} deleted from KFP by "
                        f"`aicash pipeline schedule --reconcile` ({'replaced' if keep else 'turned off'})")
    if cron is None:
        return Reconciled("deleted" if stale else "absent", deleted=stale)
    if created is None:
        return Reconciled("unchanged", keep, deleted=stale)
    return Reconciled("replaced" if stale else "created", keep, created.run_id, stale)


def _close_schedule(engine: Engine, recurring_run_id: str, reason: str) -> None:
    """Close the open `scheduled` rows of a recurring run that no longer exists (`cancelled`, with why)."""
    from sqlalchemy import select

    from aicash.db.engine import session_scope
    from aicash.db.models import TrainingRun

    with session_scope(engine) as session:
        open_rows = select(TrainingRun).where(TrainingRun.status == "scheduled", TrainingRun.finished_at.is_(None))
        ids = [row.id for row in session.scalars(open_rows)
               if (row.params or {}).get("kfp_recurring_run_id") == recurring_run_id]
    for run_id in ids:
        finish_run(engine, run_id, "cancelled", error=reason)


def launch(
    engine: Engine, settings: Settings, name: str, arguments: dict[str, Any], *, host: str | None = None,
    image: str | None = None, execute: Executor | None = None,
) -> Launched:
    """On the KFP server at `host` (default KFP_HOST) when there is one, else here and now."""
    host = host or settings.kfp_host
    if host:
        return submit(engine, settings, name, arguments, host=host, image=image)
    return run_here(engine, settings, name, arguments, execute=execute)


def failure_cause(output: str) -> str:
    """The last exception line that is not KFP's summary (`RuntimeError: Pipeline ... FAILURE`): the cause."""
    found = [m.group(0).strip() for line in ANSI.sub("", output).splitlines() if (m := CAUSE.match(line))]
    causes = [line for line in found if "finished with status" not in line]
    return (causes or found or ["no error line in the log"])[-1][:1000]


def child_env(settings: Settings, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a pipeline's child process: this process's (or `base`), with DATABASE_URL set to
    ADMIN_DATABASE_URL when that is set. The service logs in as aicash_serving, which may not write models or
    training runs; its admin login (aicash_training) may, and may refresh the features."""
    env = dict(os.environ if base is None else base)
    if settings.admin_database_url is not None:
        env["DATABASE_URL"] = settings.admin_database_url.get_secret_value()
    return env


class ChildProcess:
    """An executor that runs the pipeline in a child process (`python -m pipelines.runner`): a run is CPU-heavy,
    KFP's local state is global, and a child can be stopped. Its log goes to AICASH_HOME/kfp/logs/run-<id>.log (and,
    with `echo`, to this process's stdout as it comes, Python's warnings left out; with `on_line`, each line is
    handed to it, as `aicash pipeline run` does for its live view). The child leads its own process group, with the task
    processes KFP's runner starts under it: after TRAINING_TIMEOUT_SECONDS, or when the caller is interrupted, the
    whole group is killed, so no task outlives its run. The child connects with the admin login (`child_env`)."""

    def __init__(self, settings: Settings, *, echo: bool = False, on_line: Callable[[str], None] | None = None
                 ) -> None:
        self.root = pipeline_root(settings)
        self.timeout_seconds = settings.training_timeout_seconds
        self.echo = echo
        self.on_line = on_line
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = child_env(settings)

    @property
    def piped(self) -> bool:
        """Whether the child's output passes through this process (else it goes straight to the log file)."""
        return self.echo or self.on_line is not None

    def __call__(self, run_id: int, name: str, arguments: dict[str, Any]) -> Path:
        log_path = self.root / "logs" / f"run-{run_id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - this interpreter and module, arguments as data
                [sys.executable, "-m", "pipelines.runner", name, json.dumps(arguments), str(self.root)],
                stdout=subprocess.PIPE if self.piped else log, stderr=subprocess.STDOUT, start_new_session=True,
                env=self.env,
            )
            copier = _copy_output(self.proc, log, self.echo, self.on_line) if self.piped else None
            try:
                code = self.proc.wait(timeout=self.timeout_seconds)
            except subprocess.TimeoutExpired:
                self.stop()
                raise RunTimedOutError(f"pipeline {name} timed out after {self.timeout_seconds} s "
                                       f"(TRAINING_TIMEOUT_SECONDS): stopped with its tasks (full log: {log_path})"
                                       ) from None
            except BaseException:  # interrupted: the run must not go on without its caller
                self.stop()
                raise
            finally:
                if copier is not None:
                    copier.join(10)
        if code != 0:
            output = log_path.read_text(errors="replace")
            raise PipelineFailedError(f"pipeline {name} failed (exit code {code}): {failure_cause(output)} "
                                      f"(full log: {log_path})")
        return log_path

    def stop(self, grace_seconds: float = 10.0) -> None:
        """End a running child and every process of its group: SIGTERM, then SIGKILL after `grace_seconds`."""
        if self.proc is None or self.proc.poll() is not None:
            return
        _signal_group(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=grace_seconds)
        _signal_group(self.proc.pid, signal.SIGKILL)  # task processes may outlive the child's own exit
        self.proc.wait()


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _copy_output(proc: subprocess.Popen[bytes], log: Any, echo: bool,
                 on_line: Callable[[str], None] | None) -> threading.Thread:  # fmt: skip
    """A thread copying the child's output, line by line, to its log file and, with `echo`, to this process's
    stdout without Python's warnings, and handing each line to `on_line`."""
    from pipelines.progress import WarningFilter

    warnings_out = WarningFilter()

    def copy() -> None:
        assert proc.stdout is not None  # noqa: S101 - started with stdout=PIPE
        for line in iter(proc.stdout.readline, b""):
            log.write(line)
            log.flush()
            text = line.decode(errors="replace")
            if echo and warnings_out.keep(text):
                sys.stdout.write(text)
                sys.stdout.flush()
            if on_line is not None:
                on_line(text)

    thread = threading.Thread(target=copy, name="pipeline-output", daemon=True)
    thread.start()
    return thread
