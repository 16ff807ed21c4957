"""Retraining on drift: run or submit the training pipeline (`pipelines.runner`, imported lazily) and audit it.

A submitter is a callable `(engine, pipeline name, arguments) -> run id`; `pipeline_submitter` makes the real one,
and every run it starts is recorded in `training_runs` as `aicash pipeline run/submit` record theirs, so the
training-failure alert sees a drift-triggered run that fails.
"""

from __future__ import annotations

import contextlib
import traceback
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from pydantic import ValidationError
from sqlalchemy import Engine

from aicash.db.engine import session_scope
from aicash.db.models import AuditLog
from aicash.model_input import MODEL_NAME
from aicash.settings import Settings

TRAINING_PIPELINE = "lstm-training"
LOCAL_PIPELINE_ROOT = "kfp"  # under AICASH_HOME, as `aicash pipeline run` uses
Submitter = Callable[[Engine, str, dict[str, Any]], str]


class RetrainError(RuntimeError):
    """The training pipeline could not be submitted, or its local run failed."""


def pipeline_submitter(settings: Settings, host: str | None) -> Submitter:
    """A submitter through `pipelines.runner`: a run on the KFP server at `host` (default KFP_HOST) in the
    KFP_IMAGE platform image, recorded as `submitted`; or, with no server, the pipeline run here and now with
    KFP's local runner, recorded as `running` then `succeeded` or `failed`.

    The caller puts the repository root on `sys.path` first (`aicash.cli.common.repo_root`)."""
    try:
        from pipelines import runner
    except ImportError as exc:
        raise RetrainError(f"the training pipelines are not importable ({exc}): run from the aicash checkout") from None
    from aicash.training.runs import finish_run, record_submission, start_run

    host = host or settings.kfp_host

    def submit(engine: Engine, name: str, arguments: dict[str, Any]) -> str:
        if host:
            kfp_run = str(runner.submit(name, host, arguments, image=settings.kfp_image))
            record_submission(engine, name, arguments, kfp_run_id=kfp_run, host=host)
            return kfp_run
        run_id = start_run(engine, name, arguments)
        try:
            runner.run_local(name, arguments, settings.aicash_home / LOCAL_PIPELINE_ROOT)
        except Exception as exc:  # the run must be closed whatever failed
            finish_run(engine, run_id, "failed", error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
            raise RetrainError(f"the local {name} run failed (training run {run_id} recorded as failed): "
                               f"{type(exc).__name__}: {exc}") from exc
        version = finish_run(engine, run_id, "succeeded")
        return f"local training run {run_id}, registered {version or 'nothing'}"[:128]

    return submit


def training_arguments(metrics: Mapping[str, Any], current: pd.DataFrame) -> dict[str, Any]:
    """The production model's recipe on fresh data: the series it was trained on (metrics.json `data.series`,
    e.g. `EURUSD/1h`), else the symbols the window's predictions asked for; and its training config
    (metrics.json `config`, as `config_json`) when that is a valid `TrainingConfig`. Empty means the defaults."""
    from aicash.training.config import TrainingConfig

    arguments: dict[str, Any] = {}
    series = [str(s) for s in ((metrics.get("data") or {}).get("series") or []) if "/" in str(s)]
    if series:
        timeframes = Counter(s.split("/", 1)[1] for s in series)
        timeframe = timeframes.most_common(1)[0][0]
        arguments = {"symbols": sorted({s.split("/", 1)[0] for s in series if s.endswith(f"/{timeframe}")}),
                     "timeframe": timeframe}
    elif "symbol" in current and len(current):
        arguments = {"symbols": sorted(current["symbol"].astype(str).unique())}
    config = metrics.get("config")
    if isinstance(config, Mapping):
        with contextlib.suppress(ValidationError):  # a config from an older release: the pipeline's defaults
            arguments["config_json"] = TrainingConfig.model_validate(dict(config)).model_dump_json()
    return arguments


def submit_retraining(
    engine: Engine, submit: Submitter, arguments: dict[str, Any], reason: str, report_location: str
) -> str:
    """Submit the training pipeline; the audit log keeps who (monitor), why and the run id."""
    try:
        run_id = submit(engine, TRAINING_PIPELINE, arguments)
    except RetrainError:
        raise
    except Exception as exc:  # a KFP server down or refusing: the report must still go out
        raise RetrainError(f"submitting {TRAINING_PIPELINE} failed: {type(exc).__name__}: {exc}") from exc
    with session_scope(engine) as session:
        session.add(AuditLog(actor="monitor", action="monitor.retrain", target=f"{MODEL_NAME}:{TRAINING_PIPELINE}",
                             details={"run_id": run_id, "arguments": arguments, "reason": reason,
                                      "report": report_location}))
    return run_id

