"""TRAINING_TIMEOUT_SECONDS on the local runner: a real `aicash pipeline run` still going after the timeout is
killed, with the task processes KFP's runner started under it, and recorded `failed` with the reason."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from aicash.cli.main import app
from aicash.db.engine import make_engine
from aicash.db.models import MLModel, TrainingRun
from pipelines.status import outcome_of

SMALL = json.dumps({"max_epochs": 2, "n_folds": 2, "hidden_size": 16, "patience": 1})
REASON = "timed out after 1 s (TRAINING_TIMEOUT_SECONDS)"


def aicash(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def processes_mentioning(text: str) -> list[str]:
    """Command lines of the live processes that mention `text` (the run's child and its tasks name its home)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            line = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process ended meanwhile
            continue
        if text in line:
            found.append(line)
    return found


@pytest.mark.slow
def test_a_run_past_the_timeout_is_killed_and_recorded_failed(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = clean_env / "home"
    assert aicash("data", "ingest", "--sample", "eurusd-1h").exit_code == 0
    monkeypatch.setenv("TRAINING_TIMEOUT_SECONDS", "1")  # far less than the run needs: it cannot finish

    result = aicash("pipeline", "run", "lstm-training", "--symbol", "EURUSD", "--config", SMALL)

    assert result.exit_code == 1, result.output
    assert REASON in " ".join(result.stderr.split()) and "recorded as failed" in result.stderr
    engine = make_engine(f"sqlite:///{home / 'aicash.db'}")
    with engine.connect() as conn:
        runs = conn.execute(select(TrainingRun.status, TrainingRun.error, TrainingRun.finished_at)).all()
        registered = conn.execute(select(MLModel.id)).first()
    engine.dispose()
    [(status, error, finished_at)] = runs
    assert status == "failed" and REASON in error and finished_at is not None
    assert registered is None
    assert not processes_mentioning(str(home)), "a process of the timed-out run is still running"
    assert (home / "kfp" / "logs" / "run-1.log").is_file()  # the log up to the kill is kept


def kfp_run(message: str) -> SimpleNamespace:
    """A failed run as `kfp.Client.get_run` gives it (the fields `outcome_of` reads): with a deadline in its platform
    spec, KFP nests the pipeline spec and the platform spec."""
    spec = {"pipeline_spec": {"pipelineInfo": {"name": "lstm-training"}},
            "platform_spec": {"platforms": {"kubernetes": {"pipelineConfig": {"activeDeadlineSeconds": 7200}}}}}
    return SimpleNamespace(run_id="run-9", state="FAILED", error=SimpleNamespace(message=message), state_history=[],
                           pipeline_spec=spec, runtime_config=None,
                           created_at=None, scheduled_at=None, finished_at=None, display_name="lstm-training")


@pytest.mark.parametrize("message", ["Step exceeded its deadline", "Max duration limit exceeded"])
def test_a_kfp_run_stopped_at_its_deadline_says_it_timed_out(message: str) -> None:
    outcome = outcome_of(kfp_run(message))
    assert (outcome.status, outcome.pipeline) == ("failed", "lstm-training")
    assert outcome.error == f"timed out: stopped by KFP at its deadline (TRAINING_TIMEOUT_SECONDS): {message}"
    assert outcome_of(kfp_run("train: ValueError: no candles")).error == "train: ValueError: no candles"
