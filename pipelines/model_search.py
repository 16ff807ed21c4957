"""Pipeline `model-search`: materialize features -> one training set per series (in parallel) -> merge -> plan the
trials from the search space -> one walk-forward per trial (`dsl.ParallelFor`, at most TRIAL_PARALLELISM at once,
every trial on the same purged folds) -> select the best out-of-sample Sharpe after costs, train it against the
baselines with the search's evidence (deflated Sharpe ratio, PBO) and record the experiment -> evaluate -> gate ->
register approved or rejected (`dsl.If`), the version linked to its experiment.

The space is a pipeline parameter (default: `pipelines/search_space.yaml`, as one line of JSON, which KFP's compiled
file can hold), so a compiled pipeline carries the space it searches.
"""

from pathlib import Path

from kfp import dsl

from pipelines.components import make_components

NAME = "model-search"
SERIES_PARALLELISM = 4  # as lstm-training: training sets built at once on the cluster
# Trials run at once on the cluster (one pod each, one CPU thread each); KFP's local runner runs at most 2 at once.
TRIAL_PARALLELISM = 4
DEFAULT_TRIALS = 16
DEFAULT_SEED = 0
SPACE_FILE = Path(__file__).with_name("search_space.yaml")  # packaged with the pipelines


def default_space() -> str:
    """The default search space (pipelines/search_space.yaml) as one line of JSON, the `space` parameter's form."""
    from aicash.training.search_space import space_json

    return space_json(SPACE_FILE)


def build(image: str, timeout_seconds: int):  # type: ignore[no-untyped-def]
    """The pipeline function for the platform image `image`; KFP stops a run after `timeout_seconds`."""
    c = make_components(image)

    @dsl.pipeline(name=NAME, description="Search model families and their parameters in parallel on the same "
                                         "walk-forward folds, train the winner, gate it with the deflated Sharpe "
                                         "ratio and PBO, and register it.",
                  pipeline_config=dsl.PipelineConfig(active_deadline_seconds=timeout_seconds))
    def model_search(symbols: list = ["EURUSD"], timeframe: str = "1h", config_json: str = "{}",  # noqa: B006
                     space: str = default_space(), trials: int = DEFAULT_TRIALS, seed: int = DEFAULT_SEED) -> None:
        # Trials first: a bad space stops the run before any feature or training set is built.
        planned = c.plan_trials(space=space, trials=trials, seed=seed, config_json=config_json)
        materialized = c.materialize_features(symbols=symbols, timeframe=timeframe).after(planned)
        materialized.set_caching_options(False)
        with dsl.ParallelFor(symbols, parallelism=SERIES_PARALLELISM, name="each-series") as symbol:
            series_set = c.build_training_set(symbol=symbol, timeframe=timeframe).after(materialized)
            series_set.set_caching_options(False)
        training_set = c.merge_training_sets(parts=dsl.Collected(series_set.outputs["training_set"]))
        training_set.set_caching_options(False)
        with dsl.ParallelFor(planned.output, parallelism=TRIAL_PARALLELISM, name="each-trial") as spec:
            trial = c.run_trial(training_set=training_set.outputs["training_set"], spec=spec)
        # records the experiment in the database: run every time
        selected = c.select_and_train(training_set=training_set.outputs["training_set"],
                                      trials=dsl.Collected(trial.outputs["trial"]), symbols=symbols,
                                      timeframe=timeframe, space=space, seed=seed).set_caching_options(False)
        c.evaluate(model=selected.outputs["model"])
        decided = c.gate(model=selected.outputs["model"])
        with dsl.If(decided.outputs["decision"] == "approved", name="approved"):
            c.register(model=selected.outputs["model"], decision="approved",
                       reasons=decided.outputs["reasons"]).set_display_name("register-approved").set_caching_options(False)
        with dsl.Else(name="rejected"):
            c.register(model=selected.outputs["model"], decision="rejected",
                       reasons=decided.outputs["reasons"]).set_display_name("register-rejected").set_caching_options(False)

    return model_search
