"""KFP v2 components, built for a given platform image: each moves artifacts in and out of a `pipelines.steps`
function and nothing more. `make_components(image)` returns them; the pipelines call it at build time. Every task
they make takes the platform's settings from KFP's namespace (`with_settings`), so no step can be left without them.

(No `from __future__ import annotations` here: KFP reads the real annotation objects.)
"""

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, List, NamedTuple  # noqa: UP035 - KFP reads typing.List in artifact annotations

from kfp import dsl, kubernetes
from kfp.dsl import HTML, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from pipelines import platform_env


def with_settings(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """`task` with the settings ConfigMap and Secret of its namespace as environment variables, key by key
    (`pipelines.platform_env`): in KFP's namespace DATABASE_URL is the training login. The stack-dependent keys are
    optional; the others must be there or the step's pod does not start. KFP's local runner ignores all of it."""
    pe = platform_env
    for keys, optional in ((pe.CONFIG_KEYS, False), (pe.OPTIONAL_CONFIG_KEYS, True)):
        kubernetes.use_config_map_as_env(task, config_map_name=pe.SETTINGS_CONFIGMAP,
                                         config_map_key_to_env={key: key for key in keys}, optional=optional)
    for keys, optional in ((pe.SECRET_KEYS, False), (pe.OPTIONAL_SECRET_KEYS, True)):
        kubernetes.use_secret_as_env(task, secret_name=pe.SETTINGS_SECRET,
                                     secret_key_to_env={key: key for key in keys}, optional=optional)
    return task


def _taking_settings(component: Callable[..., dsl.PipelineTask]) -> Callable[..., dsl.PipelineTask]:
    def task(**arguments: object) -> dsl.PipelineTask:
        return with_settings(component(**arguments))

    task.__doc__ = component.__doc__
    return task


def make_components(image: str) -> SimpleNamespace:
    """The components of every pipeline, running in the platform image `image`."""
    component = dsl.component(base_image=image)

    @component
    def materialize_features(symbols: list, timeframe: str) -> str:
        """Apply the Feast repository and materialize the latest features offline and online."""
        from pipelines.steps import materialize_features as step

        return step(symbols, timeframe)

    @component
    def build_training_set(symbol: str, timeframe: str, training_set: Output[Dataset]) -> int:
        """One series' entity rows for every bar, features joined point in time by Feast (one task per series)."""
        from pipelines.steps import build_training_set as step

        rows = step([symbol], timeframe, training_set.path)
        training_set.metadata["rows"] = rows
        return rows

    @component
    def merge_training_sets(parts: Input[List[Dataset]], training_set: Output[Dataset]) -> int:  # noqa: UP006
        """The series' training sets as one, in a stable order (symbol, bar time), for one model on all of them."""
        from pipelines.steps import merge_training_sets as step

        rows = step([part.path for part in parts], training_set.path)
        training_set.metadata["rows"] = rows
        return rows

    @component
    def train(training_set: Input[Dataset], config_json: str, model: Output[Model]) -> None:
        """Walk-forward (out-of-sample) training and the final model (its family from the config, LSTM by default);
        the artifact folder is the Model."""
        from pipelines.steps import train as step

        metrics = step(training_set.path, config_json, model.path)
        family = metrics["config"].get("family", "lstm")
        model.metadata.update({"framework": "lightgbm" if family == "lightgbm" else "pytorch-torchscript",
                               "family": family, "training_samples": metrics["training_samples"]})

    @component
    def evaluate(
        model: Input[Model], metrics: Output[Metrics], confusion: Output[ClassificationMetrics], report: Output[HTML]
    ) -> None:
        """Publish the out-of-sample figures next to the baselines, the confusion matrix and the HTML report."""
        import shutil

        from aicash.training.artifact_files import report_path
        from pipelines.steps import evaluation_figures

        figures = evaluation_figures(model.path)
        for name, value in figures["metrics"].items():
            metrics.log_metric(name, value)
        confusion.log_confusion_matrix(figures["classes"], figures["confusion_matrix"])
        shutil.copyfile(report_path(model.path), report.path)

    @component
    def gate(model: Input[Model]) -> NamedTuple("GateOutput", [("decision", str), ("reasons", str)]):  # noqa: UP014
        """MIN_TRAINING_SAMPLES, MIN_ACCURACY, MIN_WIN_RATE and better than the best baseline."""
        import json
        from collections import namedtuple

        from pipelines.steps import gate_model

        approved, reasons = gate_model(model.path)
        return namedtuple("GateOutput", ["decision", "reasons"])(
            "approved" if approved else "rejected", json.dumps(reasons)
        )

    @component
    def register(model: Input[Model], decision: str, reasons: str) -> str:
        """Record the version in the registry with the gate's decision; a rejected model is never approved."""
        import json

        from pipelines.steps import register as step

        return step(model.path, decision == "approved", json.loads(reasons))

    @component
    def optimize_weights(symbols: list, timeframe: str, source: str) -> str:
        """Fit the rule signal's weights out of sample, from backtests on candles or from real trades."""
        import json

        from pipelines.steps import optimize_weights as step

        return json.dumps(step(symbols, timeframe, source))

    @component
    def save_weights(result_json: str) -> str:
        """Write the weights as a new version in signal_weights when they beat the weights in force; the output
        says which version was saved, or why nothing was (both out-of-sample figures)."""
        import json

        from pipelines.steps import save_weights_if_better

        return save_weights_if_better(json.loads(result_json))

    return SimpleNamespace(**{c.name.replace("-", "_"): _taking_settings(c) for c in (
        materialize_features, build_training_set, merge_training_sets, train, evaluate, gate, register,
        optimize_weights, save_weights, *_search_components(component),
    )})


def _search_components(component: Callable[..., Any]) -> tuple[Any, ...]:
    """The model search's own components: plan the trials, run one, select and train the winner."""

    @component
    def plan_trials(space: str, trials: int, seed: int, config_json: str) -> list:
        """The model search's trials drawn from the space (YAML text): one TrainingConfig JSON per trial, with
        its number, family and parameters; a bad space or trial count fails here, naming the field."""
        from pipelines.steps import plan_trials as step

        return step(space, trials, seed, config_json)

    @component
    def run_trial(training_set: Input[Dataset], spec: str, trial: Output[Dataset]) -> str:
        """One trial's walk-forward on the shared folds: the Dataset holds its per-bar out-of-sample returns after
        costs (returns.parquet) and its figures (trial.json)."""
        import json

        from pipelines.steps import run_trial as step

        summary = step(training_set.path, spec, trial.path)
        record = json.loads(spec)
        trial.metadata.update({"number": record["number"], "family": record["family"]})
        return summary

    @component
    def select_and_train(
        training_set: Input[Dataset], trials: Input[List[Dataset]], symbols: list, timeframe: str,  # noqa: UP006
        space: str, seed: int, model: Output[Model], report: Output[HTML],
    ) -> str:
        """The winner (best out-of-sample Sharpe after costs) trained against the baselines with the search's
        evidence (deflated Sharpe ratio, PBO); the experiment recorded with every trial; the search report."""
        from aicash.training.artifact_files import read_metrics
        from pipelines.steps import select_and_train as step

        summary = step(training_set.path, [t.path for t in trials], model.path, report.path, symbols=symbols,
                       timeframe=timeframe, space_text=space, seed=seed)
        metrics = read_metrics(model.path)
        family = metrics["search"]["family"]
        model.metadata.update({"framework": "lightgbm" if family == "lightgbm" else "pytorch-torchscript",
                               "family": family, "training_samples": metrics["training_samples"]})
        return summary

    return plan_trials, run_trial, select_and_train

