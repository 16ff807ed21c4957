"""Retraining on drift for real: `aicash monitor drift --retrain` runs the lstm-training pipeline with KFP's local
runner, or, with KFP_HOST set, submits it through `kfp.Client` to a real HTTP server speaking the KFP REST API.

Evidently and the local pipeline run on SQLite only (as in test_drift.py); the records they write are the same
tables the database tests cover on both databases.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select

from aicash.db.models import AuditLog, DriftReport, MLModel, TrainingRun
from aicash.monitoring.retrain import training_arguments
from aicash.registry import promote
from aicash.settings import Settings
from aicash.training.config import TrainingConfig
from tests.support.kfp_api import KfpApi
from tests.support.monitoring import METRICS, SHIFTED, indicator_frame, log_predictions, register_version
from tests.support.net import free_port

# The production model's recipe: a tiny training config, so the retraining it triggers runs in seconds.
SMALL = {"max_epochs": 2, "n_folds": 2, "hidden_size": 16, "patience": 1}


def test_training_arguments_follow_the_production_models_series_and_config() -> None:
    current = pd.DataFrame({"symbol": ["GBPUSD", "EURUSD", "GBPUSD"]})
    arguments = training_arguments({"data": {"series": ["EURUSD/1h", "USDJPY/1h", "EURUSD/4h"]},
                                    "config": SMALL}, current)
    assert arguments.pop("config_json") == TrainingConfig(**SMALL).model_dump_json()
    assert arguments == {"symbols": ["EURUSD", "USDJPY"], "timeframe": "1h"}
    assert training_arguments({}, current) == {"symbols": ["EURUSD", "GBPUSD"]}
    assert training_arguments({}, pd.DataFrame()) == {}
    # a config this release does not know: the pipeline's defaults rather than a run that fails on it
    assert "config_json" not in training_arguments({"config": {"max_epochs": 2, "layers_of_doom": 9}}, current)


def _production(engine, settings: Settings, folder: Path, series: str, config: dict) -> str:  # type: ignore[no-untyped-def]
    metrics = {**METRICS, "data": {**METRICS["data"], "series": [series]}, "config": config}
    version = register_version(engine, settings, folder, "v1", reference=indicator_frame(2000, seed=1),
                               metrics=metrics)
    promote(engine, version, 100, actor="test")
    return version


@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_drift_retrains_with_the_local_runner(cli, engine, settings, tmp_path, mail_env) -> None:  # type: ignore[no-untyped-def]
    assert cli("data", "synth", "--symbols", "1", "--bars", "3000", "--seed", "3").exit_code == 0
    _production(engine, settings, tmp_path / "v1", "SYN001/1h", {**METRICS["config"], **SMALL})
    log_predictions(engine, indicator_frame(800, seed=7, shift=SHIFTED), version="v1", symbol="SYN001")

    result = cli("monitor", "drift", "--retrain")

    assert result.exit_code == 0, result.output + result.stderr
    with engine.connect() as conn:
        run = conn.execute(select(TrainingRun)).one()
        model = conn.execute(select(MLModel).where(MLModel.version != "v1")).one()
        report = conn.execute(select(DriftReport)).one()
        audit = conn.execute(select(AuditLog).where(AuditLog.action == "monitor.retrain")).one()
    # the pipeline ran here, to the end: a new version registered with the gate's decision, on the model's series
    assert (run.pipeline, run.status, run.model_version) == ("lstm-training", "succeeded", model.version)
    assert run.params["symbols"] == ["SYN001"] and run.params["timeframe"] == "1h"
    assert model.status in {"approved", "rejected"}
    assert model.metrics["data"]["series"] == ["SYN001/1h"]
    assert {k: model.metrics["config"][k] for k in SMALL} == SMALL  # trained with the production model's recipe
    stored = settings.aicash_home / "models" / "signal-lstm" / model.version
    assert {"model.pt", "metrics.json", "reference.parquet"} <= {p.name for p in stored.iterdir()}
    expected = f"local training run {run.id}, registered {model.version}"
    assert report.retrain_run == expected and audit.details["run_id"] == expected
    assert f"retraining submitted: {expected}" in result.stdout
    assert expected in mail_env.messages[0].get_body(("html",)).get_content()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_failed_local_retraining_is_recorded_and_reported(cli, engine, settings, tmp_path,  # type: ignore[no-untyped-def]
                                                           mail_env) -> None:
    """No candles for the model's series: the pipeline fails; the run is recorded as failed (the training-failure
    alert reads that), the command exits 1 and the mail still goes out, saying so."""
    _production(engine, settings, tmp_path / "v1", "GBPUSD/1h", {**METRICS["config"], **SMALL})
    log_predictions(engine, indicator_frame(800, seed=7, shift=SHIFTED), version="v1")

    result = cli("monitor", "drift", "--retrain")

    assert result.exit_code == 1
    assert "retraining not submitted: the local lstm-training run failed (training run 1 recorded as failed)" in (
        " ".join(result.stderr.split()))
    with engine.connect() as conn:
        run = conn.execute(select(TrainingRun)).one()
        assert conn.execute(select(DriftReport.retrain_run)).scalar_one() is None
        assert conn.execute(select(AuditLog).where(AuditLog.action == "training.failed")).one().target == (
            "lstm-training")
    assert run.status == "failed" and run.params["symbols"] == ["GBPUSD"] and run.error
    assert "Retraining NOT submitted" in mail_env.messages[0].get_body(("html",)).get_content()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_drift_submits_to_the_kfp_api_at_kfp_host(cli, engine, settings, tmp_path, kfp_api: KfpApi,  # type: ignore[no-untyped-def]
                                                  monkeypatch, mail_env) -> None:
    monkeypatch.setenv("KFP_HOST", kfp_api.url)
    monkeypatch.setenv("KFP_IMAGE", "registry.example.com/aicash-platform:1.4.2")
    _production(engine, settings, tmp_path / "v1", "EURUSD/4h", {**METRICS["config"], **SMALL})
    log_predictions(engine, indicator_frame(800, seed=7, shift=SHIFTED), version="v1")

    result = cli("monitor", "drift", "--retrain")

    assert result.exit_code == 0, result.output + result.stderr
    calls = [(method, path) for method, path, _, _ in kfp_api.requests]
    assert calls == [("GET", "/apis/v2beta1/healthz"), ("GET", "/apis/v2beta1/experiments"),
                     ("POST", "/apis/v2beta1/experiments"), ("POST", "/apis/v2beta1/runs")]
    assert kfp_api.requests[2][3]["display_name"] == "aicash"
    [run] = kfp_api.runs()
    spec, platform = run["pipeline_spec"]["pipeline_spec"], run["pipeline_spec"]["platform_spec"]
    assert spec["pipelineInfo"]["name"] == "lstm-training"
    assert platform["platforms"]["kubernetes"]["pipelineConfig"]["activeDeadlineSeconds"] == 7200  # the time limit
    assert {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()} == {
        "registry.example.com/aicash-platform:1.4.2"}
    parameters = run["runtime_config"]["parameters"]
    assert parameters["symbols"] == ["EURUSD"] and parameters["timeframe"] == "4h"
    assert json.loads(parameters["config_json"]) == TrainingConfig(**{**METRICS["config"], **SMALL}).model_dump()
    assert set(parameters) == {"symbols", "timeframe", "config_json"}
    assert run["experiment_id"] == "exp-1" and run["display_name"].startswith("lstm-training-")
    # nothing ran here: the run is recorded as submitted, with the id the server gave
    with engine.connect() as conn:
        recorded = conn.execute(select(TrainingRun)).one()
        assert conn.execute(select(DriftReport.retrain_run)).scalar_one() == "run-1"
        assert conn.execute(select(MLModel.version)).scalars().all() == ["v1"]
    assert recorded.status == "submitted"
    assert recorded.params["kfp_run_id"] == "run-1" and recorded.params["kfp_host"] == kfp_api.url
    assert "retraining submitted: run-1" in result.stdout


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_unreachable_kfp_api_is_reported_and_the_mail_still_goes(cli, engine, settings, tmp_path,  # type: ignore[no-untyped-def]
                                                                    monkeypatch, mail_env) -> None:
    _production(engine, settings, tmp_path / "v1", "EURUSD/1h", METRICS["config"])
    log_predictions(engine, indicator_frame(800, seed=7, shift=SHIFTED), version="v1")

    result = cli("monitor", "drift", "--retrain", "--kfp-host", f"http://127.0.0.1:{free_port()}")

    assert result.exit_code == 1
    assert "retraining not submitted: submitting lstm-training failed" in " ".join(result.stderr.split())
    assert "Retraining NOT submitted" in mail_env.messages[0].get_body(("html",)).get_content()
    with engine.connect() as conn:  # recorded before KFP was asked, then closed failed with KFP's error
        [(status, error, params)] = conn.execute(select(TrainingRun.status, TrainingRun.error, TrainingRun.params))
    assert status == "failed" and "refused or did not answer" in error and "kfp_run_id" not in params
