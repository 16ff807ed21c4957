"""`aicash pipeline run model-search` end to end with KFP's local runner on a tiny space (two fast trials), its
compiled graph, and the bad input that stops it before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select
from typer.testing import CliRunner

from aicash.cli.main import app
from aicash.db.engine import make_engine
from aicash.db.models import MLModel, TrainingRun
from aicash.experiments import get_experiment, list_experiments
from pipelines import model_search, runner
from pipelines.progress import RunLog

# Data settings shared by every trial (--config) and a grid of two fast trials: a few seconds each.
BASE = json.dumps({"n_folds": 2, "window_bars": 16, "horizon_bars": 2, "max_epochs": 2, "patience": 1})
TINY_SPACE = "sampler: grid\nfamilies:\n  linear: {max_epochs: 2}\n  lightgbm: {n_estimators: 10, num_leaves: 7}\n"


@pytest.fixture
def local_env(clean_env: Path) -> Path:
    """AICASH_HOME of a clean local environment."""
    return clean_env / "home"


def aicash(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def recorded(home: Path) -> tuple[list, list]:
    engine = make_engine(f"sqlite:///{home / 'aicash.db'}")
    with engine.connect() as conn:
        models = conn.execute(select(MLModel.version, MLModel.status, MLModel.metrics, MLModel.reasons)).all()
        runs = conn.execute(select(TrainingRun.status, TrainingRun.model_version, TrainingRun.params)).all()
    engine.dispose()
    return models, runs


@pytest.mark.slow
def test_model_search_runs_its_trials_and_registers_the_winner_once(local_env: Path) -> None:
    assert aicash("data", "synth", "--symbols", "1", "--bars", "900", "--seed", "5").exit_code == 0
    space = local_env.parent / "space.yaml"
    space.write_text(TINY_SPACE)
    result = aicash("pipeline", "run", "model-search", "--symbol", "SYN001", "--trials", "2", "--space", str(space),
                    "--seed", "3", "--config", BASE)
    assert result.exit_code == 0, result.output + result.stderr
    models, runs = recorded(local_env)
    assert len(models) == 1  # approved or rejected, never both
    version, status, metrics, reasons = models[0]
    assert status in {"approved", "rejected"} and (status == "approved") == reasons["gate_passed"]
    search = metrics["search"]
    assert search["trials"] == 2 and search["selected_trial"] in (1, 2) and search["pbo"] is not None
    assert search["family"] == metrics["config"]["family"] in {"linear", "lightgbm"}
    gate = metrics["gate"]  # every check, passed or failed, with its numbers
    assert any("deflated Sharpe ratio" in r for r in gate["reasons"] + gate["passed"])
    assert gate["approved"] == (status == "approved") and reasons["gate"] == gate["reasons"]
    [(run_status, run_version, params)] = runs
    assert (run_status, run_version) == ("succeeded", version)
    assert (params["trials"], params["seed"]) == (2, 3) and json.loads(params["space"]) == yaml.safe_load(TINY_SPACE)

    # the experiment holds both trials, the winner marked, and names the version and the gate's decision
    engine = make_engine(f"sqlite:///{local_env / 'aicash.db'}")
    [listed] = list_experiments(engine)
    experiment = get_experiment(engine, search["experiment_id"])
    engine.dispose()
    assert listed["id"] == search["experiment_id"]
    assert (experiment["model_version"], experiment["decision"]) == (version, status)
    assert [(t["number"], t["family"], t["selected"]) for t in experiment["trials"]] == [
        (1, "linear", search["selected_trial"] == 1), (2, "lightgbm", search["selected_trial"] == 2)]
    stored = local_env / "models" / "signal-lstm" / version
    assert {"metrics.json", "report.html", "search_report.html"} <= {p.name for p in stored.iterdir()}
    assert "Sharpe" in (stored / "search_report.html").read_text()

    # a line per trial with its family and Sharpe; the summary with the search and the gate
    for line in ("plan-trials", "2 trials", "run-trial", "trial 1 linear: Sharpe", "trial 2 lightgbm: Sharpe",
                 "select-and-train", f"winner trial {search['selected_trial']} of 2", "search: 2 trials (experiment",
                 "deflated Sharpe ratio", "probability of backtest overfitting", f"gate: {status}",
                 f"registered {version}", "search report: "):
        assert line in result.output, line
    assert "Warning" not in result.output + result.stderr
    log = RunLog()
    for line in (local_env / "kfp" / "logs" / "run-1.log").read_text().splitlines():
        log.feed(line)
    log.finish()
    assert log.outcome == "SUCCESS" and all(t.status == "succeeded" and t.figure for t in log.tasks)
    assert sorted(t.figure.split(":")[0] for t in log.tasks if t.name.startswith("run-trial")) == [
        "trial 1 linear", "trial 2 lightgbm"]


@pytest.mark.parametrize(
    ("space", "args", "message"),
    [
        (TINY_SPACE, ["--trials", "0"], "trials must be at least 1 (--trials), got 0"),
        ("families: {xgboost: {}}", [], "unknown family 'xgboost'"),
        ("families: {lstm: {n_folds: [2, 3]}}", [], "lstm.n_folds is not a parameter of the lstm family"),
        ("families: {}", [], "it is empty"),
        ("families: {lstm: {hidden_size: [0]}}", [], "lstm.hidden_size value 0 is refused"),
        (TINY_SPACE, ["--seed", "-1"], "seed must be 0 or more"),
        (None, ["--space", "missing.yaml"], "--space missing.yaml: no such file"),
    ],
)
def test_bad_search_input_exits_2_before_anything_runs(local_env: Path, space, args, message) -> None:  # type: ignore[no-untyped-def]
    assert aicash("data", "synth", "--symbols", "1", "--bars", "300", "--seed", "5").exit_code == 0
    if space is not None:
        (local_env.parent / "space.yaml").write_text(space)
        args = ["--space", "space.yaml", *args]
    result = aicash("pipeline", "run", "model-search", "--symbol", "SYN001", *args)
    assert result.exit_code == 2 and message in " ".join(result.stderr.split()), result.stderr
    assert recorded(local_env) == ([], [])


def test_search_options_apply_to_model_search_only_and_short_series_are_refused(local_env: Path) -> None:
    assert aicash("data", "synth", "--symbols", "1", "--bars", "100", "--seed", "5").exit_code == 0
    result = aicash("pipeline", "run", "lstm-training", "--symbol", "SYN001", "--trials", "4")
    assert result.exit_code == 2 and "--trials applies to the model-search pipeline only" in result.stderr
    result = aicash("pipeline", "run", "model-search", "--symbol", "SYN001", "--trials", "2")
    assert result.exit_code == 2 and "SYN001 1h has 100 bars; training needs at least" in result.stderr
    assert recorded(local_env) == ([], [])


def test_model_search_graph() -> None:
    spec, _ = yaml.safe_load_all((runner.COMPILED_DIR / "model-search.yaml").read_text())
    tasks = spec["root"]["dag"]["tasks"]
    loops = {name: task for name, task in tasks.items() if name.startswith("for-loop")}
    [trials] = [t for t in loops.values() if "plan-trials" in t["parameterIterator"]["items"]["inputParameter"]]
    assert trials["iteratorPolicy"]["parallelismLimit"] == model_search.TRIAL_PARALLELISM
    assert set(trials["dependentTasks"]) == {"plan-trials", "merge-training-sets"}
    loop_name = trials["componentRef"]["name"]
    assert set(spec["components"][loop_name]["dag"]["tasks"]) == {"run-trial"}
    collected = tasks["select-and-train"]["inputs"]["artifacts"]["trials"]["taskOutputArtifact"]
    assert collected == {"outputArtifactKey": "pipelinechannel--run-trial-trial",
                         "producerTask": loop_name.removeprefix("comp-")}
    outputs = spec["components"]["comp-select-and-train"]["outputDefinitions"]["artifacts"]
    assert {k: v["artifactType"]["schemaTitle"] for k, v in outputs.items()} == {"model": "system.Model",
                                                                                "report": "system.HTML"}
    for name in ("evaluate", "gate"):
        assert tasks[name]["inputs"]["artifacts"]["model"]["taskOutputArtifact"]["producerTask"] == "select-and-train"
    assert not tasks["select-and-train"]["cachingOptions"].get("enableCache", False)  # records an experiment
    # the compiled pipeline carries the default space, as one line of JSON
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["space"]["defaultValue"] == model_search.default_space()
    assert parameters["trials"]["defaultValue"] == model_search.DEFAULT_TRIALS


def test_the_run_view_follows_trials_running_side_by_side() -> None:
    """Two trial tasks at once (the local runner's ParallelFor): each is named by its first line, a task's end and
    outputs go to the task that just finished, and a line of the other task in between does not hide the next."""
    log = RunLog()
    lines = [
        "02:20:25.796 - INFO - Executing task 'run-trial'",
        "02:20:25.797 - INFO - Executing task 'run-trial'",
        '    trial 1: linear {"max_epochs": 2}',
        '    trial 2: lightgbm {"n_estimators": 10}',
        "02:20:42.254 - INFO - Task 'run-trial' finished with status SUCCESS",
        "02:20:42.267 - INFO - Task 'run-trial' outputs:",
        "    Output: 'trial 1 linear: Sharpe -4.25, 618 trades (2.1 s)'",
        '    trial 3: gru {"hidden_size": 8}',  # the next task's first line, before the rule
        "--------------------------------------------------------------------------------",
        "02:20:42.268 - INFO - Executing task 'run-trial'",
        "02:20:50.051 - INFO - Task 'run-trial' finished with status SUCCESS",
        "02:20:50.052 - INFO - Task 'run-trial' outputs:",
        "    Output: 'trial 2 lightgbm: Sharpe 1.64, 112 trades (9.3 s)'",
        "02:20:57.470 - INFO - Task 'run-trial' finished with status SUCCESS",
        "02:20:57.471 - INFO - Task 'run-trial' outputs:",
        "    Output: 'trial 3 gru: Sharpe 1.07, 7 trades (1.4 s)'",
        "--------------------------------------------------------------------------------",
        "02:20:57.480 - INFO - Pipeline 'model-search' finished with status SUCCESS",
    ]
    seen = []
    for line in lines:
        log.feed(line)
        seen.append([t.figure for t in log.tasks])
    assert seen[3] == ['trial 1 linear {"max_epochs": 2}', 'trial 2 lightgbm {"n_estimators": 10}']
    log.finish()
    assert [(t.name, t.status, t.figure) for t in log.tasks] == [
        ("run-trial", "succeeded", "trial 1 linear: Sharpe -4.25, 618 trades (2.1 s)"),
        ("run-trial #2", "succeeded", "trial 2 lightgbm: Sharpe 1.64, 112 trades (9.3 s)"),
        ("run-trial #3", "succeeded", "trial 3 gru: Sharpe 1.07, 7 trades (1.4 s)"),
    ]
