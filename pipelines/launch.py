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

import json
import logging
import re
import subprocess
import sys
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


def in_process(settings: Settings) -> Executor:
    """Runs the pipeline in this process with KFP's local runner (the CLI and the drift job wait for it)."""
    from pipelines.runner import run_local

    def execute(run_id: int, name: str, arguments: dict[str, Any]) -> Any:
        return run_local(name, arguments, pipeline_root(settings))

    return execute


def run_here(
    engine: Engine, settings: Settings, name: str, arguments: dict[str, Any], *,
    execute: Executor | None = None, run_id: int | None = None,
) -> Launched:
    """Run the pipeline here to its end and record it; `run_id` continues a run already recorded `running`
    (the service answers with it before the run starts). Raises `RunFailedError` after recording the failure."""
    execute = execute or in_process(settings)
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
                   lambda: runner.submit(name, host, arguments, image=image or settings.kfp_image))


def schedule(
    engine: Engine, settings: Settings, name: str, arguments: dict[str, Any], *, host: str, cron: str,
    image: str | None = None, audit: AuditEntry | None = None,
) -> Launched:
    """Record a recurring run (`scheduling`), create it on the KFP server at `host` (six-field cron), then store
    KFP's id (`scheduled`); as `submit`."""
    from pipelines import runner

    return _on_kfp(engine, name, arguments, host, cron, audit,
                   lambda: runner.schedule(name, host, cron, arguments, image=image or settings.kfp_image))


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


class ChildProcess:
    """An executor that runs the pipeline in a child process (`python -m pipelines.runner`), for the serving
    process: a run is CPU-heavy and KFP's local state is global. Its log goes to AICASH_HOME/kfp/logs/run-<id>.log."""

    def __init__(self, settings: Settings) -> None:
        self.root = pipeline_root(settings)
        self.proc: subprocess.Popen[bytes] | None = None

    def __call__(self, run_id: int, name: str, arguments: dict[str, Any]) -> Path:
        log_path = self.root / "logs" / f"run-{run_id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - this interpreter and module, arguments as data
                [sys.executable, "-m", "pipelines.runner", name, json.dumps(arguments), str(self.root)],
                stdout=log, stderr=subprocess.STDOUT,
            )
            code = self.proc.wait()
        if code != 0:
            output = log_path.read_text(errors="replace")
            raise PipelineFailedError(f"pipeline {name} failed (exit code {code}): {failure_cause(output)} "
                                      f"(full log: {log_path})")
        return log_path

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
