"""`aicash pipeline run` end to end with KFP's local runner: lstm-training on real EURUSD candles and synthetic
candles; signal-weights on candles with a planted signal, with and without imported trades."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from aicash.cli.main import app
from aicash.db.engine import make_engine
from aicash.db.models import AuditLog, MLModel, SignalWeights, TrainingRun
from aicash.signals.optimize import optimize_from_backtest
from pipelines.progress import RunLog
from tests.support.signals import mean_reverting_candles, rsi_driven_trades

SMALL = json.dumps({"max_epochs": 2, "n_folds": 2, "hidden_size": 16, "patience": 1})


@pytest.fixture
def local_env(clean_env: Path) -> Path:
    """AICASH_HOME of a clean local environment."""
    return clean_env / "home"


def aicash(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.mark.slow
def test_training_pipeline_builds_one_training_set_per_series_and_trains_on_all(local_env: Path) -> None:
    """Several symbols: the ParallelFor builds each series' training set (one task each), the merge joins them,
    and one model is trained on every series."""
    assert aicash("data", "synth", "--symbols", "2", "--bars", "2000", "--seed", "5").exit_code == 0
    handlers = logging.getLogger().handlers[:]
    result = aicash("pipeline", "run", "lstm-training", "--symbol", "SYN001", "--symbol", "SYN002", "--config", SMALL)
    assert result.exit_code == 0, result.output + result.stderr
    # KFP's runner swaps the root logger's handler from the loop's threads at once: none of its handlers stays
    assert logging.getLogger().handlers == handlers
    engine = make_engine(f"sqlite:///{local_env / 'aicash.db'}")
    with engine.connect() as conn:
        [metrics] = conn.execute(select(MLModel.metrics)).scalars().all()
    engine.dispose()
    assert sorted(metrics["data"]["series"]) == ["SYN001/1h", "SYN002/1h"]
    parts = sorted((local_env / "kfp").rglob("for-loop-*-iteration-*/build-training-set/training_set"))
    assert len(parts) == 2  # one task per series
    merged = next((local_env / "kfp").rglob("merge-training-sets/training_set"))
    frame = pd.read_parquet(merged)
    assert len(frame) == sum(len(pd.read_parquet(p)) for p in parts)
    assert list(frame["symbol"].unique()) == ["SYN001", "SYN002"]
    assert frame.groupby("symbol")["ts"].is_monotonic_increasing.all()


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
    assert "Warning" not in result.output + result.stderr and "KFP Executor" not in result.output
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
    # one line per task, then the summary: the model against the baselines, the gate, the version, the report
    for line in ("materialize-features", "train ", "gate ", f"registered {version}", "majority", "logistic",
                 f"gate: {'approved' if reasons['gate_passed'] else 'rejected'}", str(stored / "report.html")):
        assert line in result.output, line
    # the parser reads this run's own log: every task succeeded, with its figure
    log = RunLog()
    for line in (local_env / "kfp" / "logs" / "run-1.log").read_text().splitlines():
        log.feed(line)
    log.finish()
    assert log.outcome == "SUCCESS" and all(t.status == "succeeded" and t.figure for t in log.tasks)
    assert {t.name.split("-")[0] for t in log.tasks} >= {"materialize", "train", "evaluate", "gate", "register"}


def test_a_run_without_candles_exits_2_before_it_starts(local_env: Path) -> None:
    """No candles at all: exit 2 with the fix, before any task starts; nothing is recorded or registered (a run
    that fails once started is recorded `failed`: tests/pipelines/test_timeout.py)."""
    result = aicash("pipeline", "run", "lstm-training", "--symbol", "GBPUSD", "--config", SMALL)
    assert result.exit_code == 2 and "no 1h candles for GBPUSD" in result.stderr
    engine = make_engine(f"sqlite:///{local_env / 'aicash.db'}")
    with engine.connect() as conn:
        assert conn.execute(select(TrainingRun.id)).first() is None
        assert conn.execute(select(MLModel.id)).first() is None


def ingest_planted_candles(folder: Path) -> None:
    """1,500 mean-reverting hourly bars of SYNA: the contrarian components predict the next bar, so fitted weights
    beat the default equal weights out of sample (tests/signals proves it on the functions)."""
    path = folder / "syna.csv"
    candles = mean_reverting_candles(1500, seed=1, symbol="SYNA").rename(columns={"ts": "timestamp"})
    candles[["timestamp", "open", "high", "low", "close", "volume"]].to_csv(path, index=False)
    result = aicash("data", "ingest", str(path), "--symbol", "SYNA")
    assert result.exit_code == 0, result.output


def weights_rows(home: Path) -> list[tuple[int, str, dict, dict]]:
    engine = make_engine(f"sqlite:///{home / 'aicash.db'}")
    with engine.connect() as conn:
        rows = conn.execute(select(SignalWeights.version, SignalWeights.source, SignalWeights.weights,
                                   SignalWeights.metrics).order_by(SignalWeights.version)).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def save_outputs(home: Path) -> dict[str, str]:
    """What each save-weights task of the latest signal-weights run reported (its KFP output parameter)."""
    run = sorted((home / "kfp").glob("signal-weights-*"))[-1]
    return {task.name: json.loads((task / "executor_output.json").read_text())["parameterValues"]["Output"]
            for task in sorted(run.glob("save-weights*"))}


@pytest.mark.slow
def test_signal_weights_pipeline_saves_a_better_version_and_refuses_the_same_again(local_env: Path) -> None:
    ingest_planted_candles(local_env.parent)
    engine = make_engine(f"sqlite:///{local_env / 'aicash.db'}")
    expected = optimize_from_backtest(engine, ["SYNA"], "1h")  # what the pipeline's backtest step must find
    engine.dispose()
    assert expected.improves and expected.baseline_version is None

    result = aicash("pipeline", "run", "signal-weights", "--symbol", "SYNA")
    assert result.exit_code == 0, result.output + result.stderr
    [(version, source, weights, metrics)] = weights_rows(local_env)
    assert (version, source) == (1, "backtest") and weights == expected.weights
    assert metrics["oos_score"] == pytest.approx(expected.oos_score)
    assert metrics["oos_score"] > metrics["baseline_oos_score"]
    assert metrics["baseline_version"] is None and metrics["symbols"] == ["SYNA"]
    assert list(save_outputs(local_env)) == ["save-weights"]  # no trades branch without --use-trades
    assert save_outputs(local_env)["save-weights"].startswith("saved version 1: out-of-sample sharpe")

    # The same candles again: the same fit ties with version 1 out of sample, so nothing is written and the
    # step says why, with both figures.
    result = aicash("pipeline", "run", "signal-weights", "--symbol", "SYNA")
    assert result.exit_code == 0, result.output + result.stderr
    assert [r[0] for r in weights_rows(local_env)] == [1]
    refusal = save_outputs(local_env)["save-weights"]
    assert refusal.startswith("not saved: out-of-sample sharpe") and "(version 1: " in refusal
    engine = make_engine(f"sqlite:///{local_env / 'aicash.db'}")
    with engine.connect() as conn:
        runs = conn.execute(select(TrainingRun.pipeline, TrainingRun.status, TrainingRun.params)).all()
        saves = conn.execute(select(AuditLog.target).where(AuditLog.action == "weights.save")).scalars().all()
    engine.dispose()
    assert [(r.pipeline, r.status) for r in runs] == [("signal-weights", "succeeded")] * 2
    assert runs[0].params == {"symbols": ["SYNA"], "timeframe": "1h"} and saves == ["signal_weights:1"]


@pytest.mark.slow
def test_signal_weights_use_trades_fits_the_imported_trades(local_env: Path) -> None:
    """`--use-trades`: after the backtest fit, a fit on the trades imported by `aicash db import-trades` (their
    outcome follows the RSI vote), compared with the version the backtest step just saved."""
    ingest_planted_candles(local_env.parent)
    trades = local_env.parent / "trades.csv"
    rsi_driven_trades(300, seed=6).to_csv(trades, index=False)
    assert aicash("db", "import-trades", str(trades)).exit_code == 0

    result = aicash("pipeline", "run", "signal-weights", "--symbol", "SYNA", "--use-trades")
    assert result.exit_code == 0, result.output + result.stderr
    rows = weights_rows(local_env)
    assert [(v, s) for v, s, _, _ in rows] == [(1, "backtest"), (2, "trades")]
    _, _, weights, metrics = rows[1]
    assert metrics["objective"] == "auc" and metrics["baseline_version"] == 1
    assert metrics["oos_score"] > metrics["baseline_oos_score"]
    assert metrics["out_of_sample"]["optimized"]["trades"] >= 90
    assert max(weights, key=lambda c: abs(weights[c])) == "rsi" and weights["rsi"] > 0
    assert save_outputs(local_env)["save-weights-2"].startswith("saved version 2: out-of-sample auc")
    engine = make_engine(f"sqlite:///{local_env / 'aicash.db'}")
    with engine.connect() as conn:
        params = conn.execute(select(TrainingRun.params)).scalar_one()
    engine.dispose()
    assert params == {"symbols": ["SYNA"], "timeframe": "1h", "use_trades": True}
