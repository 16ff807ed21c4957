"""Compiled IR of every pipeline, the arguments `aicash pipeline submit/schedule` hand to kfp.Client, and the
`training_runs` row each records (the training-failure alert and `GET /training-status` read that table).

No KFP server runs here: the client is replaced by a recorder of its calls (the only stand-in in this suite,
for a part that cannot run on this machine).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from kfp import components
from sqlalchemy import Engine, select

from aicash.db.models import TrainingRun
from pipelines import lstm_training, runner


def ir_documents(text: str) -> tuple[dict, dict]:
    """A compiled pipeline: its pipeline spec, then its platform spec (KFP writes both into one YAML file)."""
    spec, platform = yaml.safe_load_all(text)
    return spec, platform


def deadline(platform: dict) -> int:
    """The run's deadline in seconds (Argo's activeDeadlineSeconds) that the platform spec asks KFP for."""
    return platform["platforms"]["kubernetes"]["pipelineConfig"]["activeDeadlineSeconds"]


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("ir")
    return {p.stem: p for p in runner.compile_all(out, image="registry.example.com/aicash-platform:1.2.3")}


def test_every_pipeline_compiles_and_loads_back(compiled: dict[str, Path]) -> None:
    assert set(compiled) == {"lstm-training", "model-search", "signal-weights"}
    for name, path in compiled.items():
        loaded = components.load_component_from_file(str(path))
        assert loaded.name == name
        spec, platform = ir_documents(path.read_text())
        images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
        assert images == {"registry.example.com/aicash-platform:1.2.3"}
        assert deadline(platform) == runner.DEFAULT_TIMEOUT_SECONDS == 7200  # the guide's "< 2 hours"


def test_lstm_training_graph(compiled: dict[str, Path]) -> None:
    spec, _ = ir_documents(compiled["lstm-training"].read_text())
    tasks = spec["root"]["dag"]["tasks"]
    assert {"materialize-features", "for-loop-1", "merge-training-sets", "train", "evaluate", "gate"} <= set(tasks)
    # one training set per series, built in parallel (at most SERIES_PARALLELISM at once), then merged
    loop = tasks["for-loop-1"]
    assert loop["iteratorPolicy"]["parallelismLimit"] == lstm_training.SERIES_PARALLELISM
    assert loop["parameterIterator"]["items"]["inputParameter"] == "pipelinechannel--symbols"
    assert loop["dependentTasks"] == ["materialize-features"]
    assert set(spec["components"]["comp-for-loop-1"]["dag"]["tasks"]) == {"build-training-set"}
    merged = tasks["merge-training-sets"]["inputs"]["artifacts"]["parts"]["taskOutputArtifact"]
    assert merged == {"outputArtifactKey": "pipelinechannel--build-training-set-training_set",
                      "producerTask": "for-loop-1"}
    assert tasks["train"]["inputs"]["artifacts"]["training_set"]["taskOutputArtifact"]["producerTask"] == (
        "merge-training-sets")
    assert set(tasks["condition-branches-2"]["dependentTasks"]) == {"gate", "train"}
    branches = spec["components"]["comp-condition-branches-2"]["dag"]["tasks"]
    conditions = [t["triggerPolicy"]["condition"] for t in branches.values()]
    assert len(conditions) == 2  # dsl.If approved / dsl.Else rejected
    assert any("== 'approved'" in c for c in conditions) and any("!(" in c for c in conditions)
    registered = set()
    for branch in branches:
        for task in spec["components"][f"comp-{branch}"]["dag"]["tasks"].values():
            registered.add(task["inputs"]["parameters"]["decision"]["runtimeValue"]["constant"])
    assert registered == {"approved", "rejected"}
    evaluate_outputs = spec["components"]["comp-evaluate"]["outputDefinitions"]["artifacts"]
    assert {o["artifactType"]["schemaTitle"] for o in evaluate_outputs.values()} == {
        "system.Metrics", "system.ClassificationMetrics", "system.HTML"}
    train_outputs = spec["components"]["comp-train"]["outputDefinitions"]["artifacts"]
    assert train_outputs["model"]["artifactType"]["schemaTitle"] == "system.Model"
    # caching on, except for the steps that read or change the database's current state
    assert tasks["train"]["cachingOptions"].get("enableCache") is True
    assert not tasks["materialize-features"]["cachingOptions"].get("enableCache", False)


class RecordingClient:
    """Records kfp.Client calls and answers like the KFP API would."""

    def __init__(self, host: str) -> None:
        self.host, self.calls = host, []
        self.platforms: list[dict] = []  # each package's platform spec

    def _spec(self, pipeline_file: str) -> dict:
        spec, platform = ir_documents(Path(pipeline_file).read_text())
        self.platforms.append(platform)
        return spec

    def create_run_from_pipeline_package(self, pipeline_file: str, **kwargs):  # type: ignore[no-untyped-def]
        self.calls.append(("run", self._spec(pipeline_file), kwargs))
        return SimpleNamespace(run_id="run-123")

    def create_experiment(self, name: str):  # type: ignore[no-untyped-def]
        self.calls.append(("experiment", name, {}))
        return SimpleNamespace(experiment_id="exp-1")

    def create_recurring_run(self, **kwargs):  # type: ignore[no-untyped-def]
        spec = self._spec(kwargs.pop("pipeline_package_path"))
        self.calls.append(("recurring", spec, kwargs))
        return SimpleNamespace(recurring_run_id="job-7")


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> list[RecordingClient]:
    made: list[RecordingClient] = []

    def client(host: str) -> RecordingClient:
        made.append(RecordingClient(host))
        return made[-1]

    monkeypatch.setattr(runner, "client", client)
    return made


def recorded_runs(engine: Engine) -> list[tuple[str, str, dict]]:
    with engine.connect() as conn:
        rows = conn.execute(select(TrainingRun.pipeline, TrainingRun.status, TrainingRun.params)
                            .order_by(TrainingRun.id)).all()
    return [tuple(r) for r in rows]


def test_submit_and_schedule_cli(cli, recorder, engine) -> None:  # type: ignore[no-untyped-def]
    result = cli("pipeline", "submit", "lstm-training", "--host", "http://kfp.example:8888", "--symbol", "eurusd",
                 "--config", '{"max_epochs": 3}', "--image", "reg/aicash-platform:9")
    assert result.exit_code == 0, result.output
    assert "run-123" in result.stdout
    kind, spec, kwargs = recorder[0].calls[0]
    assert recorder[0].host == "http://kfp.example:8888" and kind == "run"
    assert spec["pipelineInfo"]["name"] == "lstm-training"
    assert kwargs["arguments"] == {"symbols": ["EURUSD"], "timeframe": "1h", "config_json": '{"max_epochs": 3}'}
    assert kwargs["experiment_name"] == "aicash" and kwargs["enable_caching"] is True

    result = cli("pipeline", "schedule", "signal-weights", "--cron", "0 3 * * *", "--host", "http://kfp:8888")
    assert result.exit_code == 0, result.output
    calls = recorder[1].calls
    assert calls[0] == ("experiment", "aicash", {})
    kind, spec, kwargs = calls[1]
    assert spec["pipelineInfo"]["name"] == "signal-weights"
    assert kwargs["cron_expression"] == "0 0 3 * * *" and kwargs["experiment_id"] == "exp-1"
    assert kwargs["params"] == {"symbols": ["EURUSD"], "timeframe": "1h"}

    assert recorded_runs(engine) == [
        ("lstm-training", "submitted", {"symbols": ["EURUSD"], "timeframe": "1h", "config_json": '{"max_epochs": 3}',
                                        "kfp_run_id": "run-123", "kfp_host": "http://kfp.example:8888"}),
        ("signal-weights", "scheduled", {"symbols": ["EURUSD"], "timeframe": "1h", "kfp_recurring_run_id": "job-7",
                                         "kfp_host": "http://kfp:8888", "cron": "0 0 3 * * *"}),
    ]
    assert "(training run 2)" in " ".join(result.stdout.split())


def test_use_trades_reaches_the_signal_weights_pipeline(cli, recorder, engine) -> None:  # type: ignore[no-untyped-def]
    result = cli("pipeline", "submit", "signal-weights", "--host", "http://kfp:8888", "--symbol", "gbpusd",
                 "--use-trades")
    assert result.exit_code == 0, result.output
    kind, spec, kwargs = recorder[0].calls[0]
    assert kind == "run" and spec["pipelineInfo"]["name"] == "signal-weights"
    assert kwargs["arguments"] == {"symbols": ["GBPUSD"], "timeframe": "1h", "use_trades": True}
    assert spec["root"]["inputDefinitions"]["parameters"]["use_trades"]["parameterType"] == "BOOLEAN"

    result = cli("pipeline", "schedule", "signal-weights", "--cron", "0 0 4 * * 1", "--host", "http://kfp:8888",
                 "--use-trades")
    assert result.exit_code == 0, result.output
    assert recorder[1].calls[1][2]["params"] == {"symbols": ["EURUSD"], "timeframe": "1h", "use_trades": True}
    assert [(p, s, params["use_trades"]) for p, s, params in recorded_runs(engine)] == [
        ("signal-weights", "submitted", True), ("signal-weights", "scheduled", True)]


def test_kfp_runs_get_training_timeout_seconds_as_their_deadline(cli, recorder, engine, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A submitted or scheduled run carries TRAINING_TIMEOUT_SECONDS as its deadline: KFP stops it there and the
    run ends FAILED, which `aicash pipeline status` records."""
    monkeypatch.setenv("TRAINING_TIMEOUT_SECONDS", "900")
    assert cli("pipeline", "submit", "lstm-training", "--host", "http://kfp:8888").exit_code == 0
    assert cli("pipeline", "schedule", "signal-weights", "--cron", "0 3 * * *", "--host", "http://kfp:8888"
               ).exit_code == 0
    assert [deadline(p) for client in recorder for p in client.platforms] == [900, 900]
    assert cli("pipeline", "compile", "--out", str(tmp_path)).exit_code == 0  # and the CLI compiles it in
    assert {deadline(ir_documents(p.read_text())[1]) for p in tmp_path.glob("*.yaml")} == {900}


class RefusingClient(RecordingClient):
    def create_run_from_pipeline_package(self, pipeline_file: str, **kwargs):  # type: ignore[no-untyped-def]
        raise ConnectionError("[Errno 111] Connection refused")


def test_a_refused_submission_exits_1_and_is_recorded_failed(cli, engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The run is recorded before KFP is asked (so an accepted run is never untracked); KFP's refusal closes it
    `failed` with KFP's error, and without a KFP id it is never synced."""
    monkeypatch.setattr(runner, "client", RefusingClient)
    result = cli("pipeline", "submit", "lstm-training", "--host", "http://kfp:8888")
    assert result.exit_code == 1
    assert "KFP at http://kfp:8888 refused or did not answer: ConnectionError" in result.stderr
    [(pipeline, status, params)] = recorded_runs(engine)
    assert (pipeline, status) == ("lstm-training", "failed") and "kfp_run_id" not in params
    with engine.connect() as conn:
        error = conn.execute(select(TrainingRun.error)).scalar_one()
    assert "KFP at http://kfp:8888 refused or did not answer: ConnectionError" in error


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["submit", "nope", "--host", "http://h"], "unknown pipeline"),
        (["submit", "lstm-training", "--host", "http://h", "--symbol", "EUR/USD"], "--symbol"),
        (["submit", "lstm-training", "--host", "http://h", "--config", '{"max_epochs": -1}'], "--config"),
        (["schedule", "lstm-training", "--host", "http://h", "--cron", "daily"], "--cron"),
        (["run", "nope"], "unknown pipeline"),
        (["submit", "lstm-training", "--host", "http://h", "--use-trades"], "--use-trades applies to"),
        (["run", "lstm-training", "--use-trades"], "--use-trades applies to"),
    ],
)
def test_bad_input_exits_2(cli, recorder, engine, args, message) -> None:  # type: ignore[no-untyped-def]
    result = cli("pipeline", *args)
    assert result.exit_code == 2 and message in result.stderr
    assert all(not c.calls for c in recorder)
    assert recorded_runs(engine) == []


def test_compile_cli_writes_pipelines_compiled(cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = cli("pipeline", "compile", "--out", str(tmp_path))
    assert result.exit_code == 0
    assert sorted(p.name for p in tmp_path.glob("*.yaml")) == [
        "lstm-training.yaml", "model-search.yaml", "signal-weights.yaml"]


def test_committed_ir_is_current(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """pipelines/compiled/ holds what `aicash pipeline compile` writes today (recompile after a change)."""
    for fresh in runner.compile_all(tmp_path):
        committed = runner.COMPILED_DIR / fresh.name
        assert committed.read_text() == fresh.read_text(), f"{committed} is stale: run `aicash pipeline compile`"
