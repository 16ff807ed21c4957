"""Retraining on drift: which run to start, and its audit entry.

A submitter is a callable `(engine, pipeline name, arguments) -> run id`; the CLI (a composition root) gives the
real one, built on `pipelines.launch`, which records every run it starts in `training_runs` as `aicash pipeline
run/submit` record theirs, so the training-failure alert sees a drift-triggered run that fails.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from pydantic import ValidationError
from sqlalchemy import Engine

from aicash.db.engine import session_scope
from aicash.db.models import AuditLog
from aicash.model_input import MODEL_NAME

TRAINING_PIPELINE = "lstm-training"
Submitter = Callable[[Engine, str, dict[str, Any]], str]


class RetrainError(RuntimeError):
    """The training pipeline could not be submitted, or its local run failed."""


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

