"""`aicash pipeline run` end to end with KFP's local runner: real EURUSD candles and synthetic candles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from aicash.cli.main import app
from aicash.db.engine import make_engine
from aicash.db.models import MLModel, TrainingRun
from aicash.settings import Settings

SMALL = json.dumps({"max_epochs": 2, "n_folds": 2, "hidden_size": 16, "patience": 1})


@pytest.fixture
def local_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AICASH_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def aicash(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("load", "symbol"),
    [(("data", "ingest", "--sample", "eurusd-1h"), "EURUSD"),
     (("data", "synth", "--symbols", "1", "--bars", "3000", "--seed", "3"), "SYN001")],
)
def test_training_pipeline_registers_a_gated_version(local_env: Path, load, symbol) -> None:  # type: ignore[no-untyped-def]
    assert aicash(*load).exit_code == 0
    result = aicash("pipeline", "run", "lstm-training", "--symbol", symbol, "--config", SMALL)
    assert result.exit_code == 0, result.output + result.stderr
    engine = make_engine(f"sqlite:///{local_env / 'aicash.db'}")
    with engine.connect() as conn:
        models = conn.execute(select(MLModel.version, MLModel.status, MLModel.metrics, MLModel.reasons)).all()
        runs = conn.execute(select(TrainingRun.status, TrainingRun.model_version)).all()
    assert len(models) == 1
    version, status, metrics, reasons = models[0]
    assert status in {"approved", "rejected"}  # the gate decided; never left as a candidate
    assert (status == "approved") == reasons["gate_passed"]
    assert metrics["aggregate"]["model"]["samples"] > 0 and set(metrics["aggregate"]["baselines"]) >= {"majority"}
    assert runs == [("succeeded", version)]
    stored = local_env / "models" / "signal-lstm" / version
    assert {"model.pt", "metrics.json", "reference.parquet", "report.html", "manifest.json"} <= {
        p.name for p in stored.iterdir()}
    listing = aicash("models", "list")
    assert version in listing.stdout and status in listing.stdout


def test_failed_pipeline_is_recorded(local_env: Path) -> None:
    """No candles at all: the run fails, is recorded as failed with its error, and nothing is registered."""
    result = aicash("pipeline", "run", "lstm-training", "--symbol", "GBPUSD", "--config", SMALL)
    assert result.exit_code == 1 and "recorded as failed" in result.stderr
    engine = make_engine(f"sqlite:///{local_env / 'aicash.db'}")
    with engine.connect() as conn:
        runs = conn.execute(select(TrainingRun.status, TrainingRun.error)).all()
        assert conn.execute(select(MLModel.id)).first() is None
    assert runs[0][0] == "failed" and runs[0][1]
