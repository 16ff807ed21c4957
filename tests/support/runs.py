"""Training runs recorded the way `pipelines.launch` records them, for tests that start from a KFP run."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from aicash.training.runs import kfp_accepted, record_kfp_attempt


def kfp_run(engine: Engine, pipeline: str, params: dict[str, Any], *, kfp_id: str, host: str,
            cron: str | None = None) -> int:  # fmt: skip
    """A run KFP at `host` accepted as `kfp_id`: `submitted` (a recurring run, with `cron`: `scheduled`)."""
    run_id = record_kfp_attempt(engine, pipeline, params, host=host, cron=cron)
    kfp_accepted(engine, run_id, kfp_id)
    return run_id
