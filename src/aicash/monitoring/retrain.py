"""Retraining on drift: submit the training pipeline (`pipelines.runner`, imported lazily) and audit it.

The submitter is a plain callable `(pipeline name, arguments) -> run id`, so tests inject their own.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from aicash.db.engine import session_scope
from aicash.db.models import AuditLog
from aicash.model_input import MODEL_NAME
from aicash.settings import Settings

TRAINING_PIPELINE = "lstm-training"
Submitter = Callable[[str, dict[str, Any]], str]


class RetrainError(RuntimeError):
    """The training pipeline could not be submitted."""


def pipeline_submitter(settings: Settings, host: str | None) -> Submitter:
    """`pipelines.runner`: a run on the KFP server at `host` (default KFP_HOST), or KFP's local runner here when
    there is none. The caller puts the repository root on `sys.path` first (`aicash.cli.common.repo_root`)."""
    try:
        from pipelines import runner
    except ImportError as exc:
        raise RetrainError(f"the training pipelines are not importable ({exc}): run from the aicash checkout") from None

    host = host or getattr(settings, "kfp_host", None)
    image = getattr(settings, "kfp_image", None)

    def submit(name: str, arguments: dict[str, Any]) -> str:
        if hasattr(runner, "submit_training"):
            return str(runner.submit_training(settings, host=host))
        if host:
            return str(runner.submit(name, host, arguments, **({"image": image} if image else {})))
        result = runner.run_local(name, arguments, settings.aicash_home / "pipelines")
        return f"local:{name}:{getattr(result, 'state', 'done')}"

    return submit


def training_arguments(metrics: Mapping[str, Any], current: pd.DataFrame) -> dict[str, Any]:
    """The series the production model was trained on (metrics.json `data.series`, e.g. `EURUSD/1h`), else the
    symbols the window's predictions asked for; empty means the pipeline's defaults."""
    series = [str(s) for s in ((metrics.get("data") or {}).get("series") or []) if "/" in str(s)]
    if series:
        timeframes = Counter(s.split("/", 1)[1] for s in series)
        timeframe = timeframes.most_common(1)[0][0]
        return {"symbols": sorted({s.split("/", 1)[0] for s in series if s.endswith(f"/{timeframe}")}),
                "timeframe": timeframe}
    if "symbol" in current and len(current):
        return {"symbols": sorted(current["symbol"].astype(str).unique())}
    return {}


def submit_retraining(
    engine: Engine, submit: Submitter, arguments: dict[str, Any], reason: str, report_location: str
) -> str:
    """Submit the training pipeline; the audit log keeps who (monitor), why and the run id."""
    try:
        run_id = submit(TRAINING_PIPELINE, arguments)
    except RetrainError:
        raise
    except Exception as exc:  # a KFP server down or refusing: the report must still go out
        raise RetrainError(f"submitting {TRAINING_PIPELINE} failed: {type(exc).__name__}: {exc}") from exc
    with session_scope(engine) as session:
        session.add(AuditLog(actor="monitor", action="monitor.retrain", target=f"{MODEL_NAME}:{TRAINING_PIPELINE}",
                             details={"run_id": run_id, "arguments": arguments, "reason": reason,
                                      "report": report_location}))
    return run_id
