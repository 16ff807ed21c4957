"""Reading training runs' outcomes back from Kubeflow Pipelines into `training_runs`.

`aicash pipeline status`, the `aicash-kfp-sync` CronJob and `aicash monitor check` (when KFP_HOST is set) call
`sync`: it reads each run's state with `kfp.Client.get_run` and hands it to `aicash.training.runs`, which writes it.
KFP's states map onto the table's statuses by `STATUS_OF`; the raw state and KFP's times stay in the row's params.

Every read comes first, every write after, in one transaction: a server that does not answer or refuses, or a run
id it does not know, leaves every row as it was. One exception keeps the periodic sync going: when syncing the open
runs (no ids given), a run KFP no longer has (deleted in its UI) is skipped, reported in `Synced.unknown`, and the
others are written.
"""

from __future__ import annotations

import json
import re
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from aicash.training.runs import KfpOutcome, RecordedOutcome, open_kfp_runs, record_kfp_outcomes

# KFP's RuntimeState -> training_runs.status; None: the state says nothing, the row stays as it is.
STATUS_OF: dict[str, str | None] = {
    "RUNTIME_STATE_UNSPECIFIED": None,
    "PENDING": "running",
    "RUNNING": "running",
    "PAUSED": "running",
    "CANCELING": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "SKIPPED": "skipped",
    "CANCELED": "cancelled",
}
# How Argo says a run was stopped at its deadline: the IR's activeDeadlineSeconds, from TRAINING_TIMEOUT_SECONDS.
DEADLINE = re.compile(r"deadline|max duration", re.IGNORECASE)
# Seconds for every read of one sync: kfp.Client sets no timeout on its HTTP calls (a hung API would hang the sync
# and `monitor check` for good), and retries a failing /healthz 5 times, 5 s apart, when it connects.
READ_DEADLINE = 60.0
REACH_KFP = ("check --host (default KFP_HOST): from a workstation, `kubectl -n kubeflow port-forward svc/ml-pipeline "
             "8888:8888` and --host http://127.0.0.1:8888; in the cluster, KFP's in-cluster API (`pulumi stack "
             "output kfp_api_url`) and `kubectl -n kubeflow get pods`")


class KfpStatusError(RuntimeError):
    """KFP could not be read: unreachable, refusing, or no such run. Nothing was written."""


class UnknownKfpRunError(KfpStatusError):
    """KFP at `host` has no run `kfp_run_id` (HTTP 404)."""

    def __init__(self, host: str, kfp_run_id: str, detail: str) -> None:
        super().__init__(f"KFP at {host} has no run {kfp_run_id} (404: {detail}): check the run id in KFP's UI, "
                         "and that --host (or KFP_HOST) is the KFP it was submitted to")
        self.host, self.kfp_run_id = host, kfp_run_id


@dataclass(frozen=True)
class Synced:
    """What a sync wrote (`runs`, in the order read), and the open runs KFP no longer has (`unknown`, left as they
    were)."""

    host: str
    runs: list[RecordedOutcome] = field(default_factory=list)
    unknown: list[UnknownKfpRunError] = field(default_factory=list)


def sync(engine: Engine, host: str, kfp_run_ids: Sequence[str] | None = None,
         deadline: float = READ_DEADLINE) -> Synced:  # fmt: skip
    """Read the runs `kfp_run_ids` (default: every open KFP run recorded for `host`) from KFP at `host` and write
    their outcomes. Raises `KfpStatusError` (nothing written) when KFP does not answer within `deadline` seconds,
    refuses, or does not know a run id that was given."""
    given = bool(kfp_run_ids)
    wanted = list(dict.fromkeys(kfp_run_ids or [])) or [kfp_id for _, kfp_id in open_kfp_runs(engine, host)]
    if not wanted:
        return Synced(host)

    def read() -> tuple[list[KfpOutcome], list[UnknownKfpRunError]]:
        client = _client(host)
        outcomes, unknown = [], []
        for kfp_run_id in wanted:
            try:
                outcomes.append(outcome_of(_get_run(client, host, kfp_run_id)))
            except UnknownKfpRunError as exc:
                if given:
                    raise
                unknown.append(exc)
        return outcomes, unknown

    outcomes, unknown = _within(deadline, host, read)
    return Synced(host, record_kfp_outcomes(engine, host, outcomes), unknown)


def outcome_of(run: Any) -> KfpOutcome:
    """A `kfp_server_api.V2beta1Run` in `training_runs`' words."""
    state = str(run.state or "RUNTIME_STATE_UNSPECIFIED")
    status = STATUS_OF.get(state)  # a state this release does not know: say nothing rather than guess
    error = _error_message(run)
    if status == "failed" and not error:
        error = f"KFP run {run.run_id} ended FAILED without an error message: its task logs are in KFP's UI"
    elif status == "failed" and DEADLINE.search(error or ""):
        error = f"timed out: stopped by KFP at its deadline (TRAINING_TIMEOUT_SECONDS): {error}"
    spec = run.pipeline_spec if isinstance(run.pipeline_spec, dict) else {}
    spec = spec.get("pipeline_spec", spec)  # with a platform spec (the run's deadline) KFP nests the two
    config = run.runtime_config
    return KfpOutcome(
        kfp_run_id=str(run.run_id), state=state, status=status,
        error=error if status in ("failed", "skipped", "cancelled") else None,
        created_at=_utc(run.created_at), scheduled_at=_utc(run.scheduled_at), finished_at=_utc(run.finished_at),
        pipeline=(spec.get("pipelineInfo") or {}).get("name") or run.display_name,
        arguments=dict(config.parameters or {}) if config is not None else {},
    )


def _error_message(run: Any) -> str | None:
    """The run's error, else the latest one in its state history (KFP puts a run's failure in either)."""
    if run.error is not None and run.error.message:
        return str(run.error.message)
    for status in reversed(run.state_history or []):
        if status.error is not None and status.error.message:
            return str(status.error.message)
    return None


def _utc(value: datetime | None) -> datetime | None:
    """KFP's time in UTC; KFP answers the Unix epoch for a time not reached yet (a run not finished)."""
    if value is None:
        return None
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return None if value.timestamp() <= 0 else value.astimezone(UTC)


def _within(seconds: float, host: str, read: Callable[[], Any]) -> Any:
    """`read()` in a daemon thread, given up after `seconds`: kfp.Client passes no timeout to urllib3, so a call
    to a hung API never returns. The abandoned thread holds no database connection and ends with the process."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = read()
        except BaseException as exc:  # handed to the caller below
            result["error"] = exc

    worker = threading.Thread(target=target, name=f"kfp-read {host}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise KfpStatusError(f"KFP at {host} did not answer within {seconds:g} s: {REACH_KFP}")
    if "error" in result:
        raise result["error"]
    return result["value"]


def _client(host: str) -> Any:
    import kfp

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "This client only works", FutureWarning)
            return kfp.Client(host=host)  # checks KFP's /healthz
    except Exception as exc:
        raise KfpStatusError(f"KFP at {host} did not answer ({_describe(exc)}): {REACH_KFP}") from exc


def _get_run(client: Any, host: str, kfp_run_id: str) -> Any:
    from kfp_server_api import ApiException

    try:
        return client.get_run(kfp_run_id)
    except ApiException as exc:
        if exc.status == 404:
            raise UnknownKfpRunError(host, kfp_run_id, _api_message(exc)) from exc
        raise KfpStatusError(f"KFP at {host} refused to give run {kfp_run_id} (HTTP {exc.status}: "
                             f"{_api_message(exc)}): check KFP's API server (`kubectl -n kubeflow logs "
                             f"deploy/ml-pipeline`) and that --host (default KFP_HOST) is its API") from exc
    except Exception as exc:
        raise KfpStatusError(f"KFP at {host} did not answer for run {kfp_run_id} ({_describe(exc)}): "
                             f"{REACH_KFP}") from exc


def _api_message(exc: Any) -> str:
    """KFP's own message from its error JSON (`{"code": 5, "message": ...}`), else the HTTP reason."""
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    message = (body.get("message") or body.get("error")) if isinstance(body, dict) else None
    return str(message or exc.reason or "no message")[:500]


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc)[:300]}"
