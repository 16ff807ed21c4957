"""Pipeline `lstm-training`: materialize features -> one training set per series (point in time, in parallel) ->
merge -> train -> evaluate -> gate -> register, with the gate deciding through `dsl.If` whether the version is
registered approved or rejected."""

from kfp import dsl

from pipelines.components import make_components

NAME = "lstm-training"
# Series whose training sets are built at once on the cluster (each task reads its candles and joins its features);
# KFP's local runner runs at most two at once.
SERIES_PARALLELISM = 4


def build(image: str, timeout_seconds: int):  # type: ignore[no-untyped-def]
    """The pipeline function for the platform image `image`; a run still going after `timeout_seconds`
    (TRAINING_TIMEOUT_SECONDS) is stopped by KFP (its Argo workflow's activeDeadlineSeconds) and fails."""
    c = make_components(image)

    @dsl.pipeline(name=NAME, description="Train the signal LSTM, evaluate it walk-forward against baselines, "
                                         "gate it and register it.",
                  pipeline_config=dsl.PipelineConfig(active_deadline_seconds=timeout_seconds))
    def lstm_training(symbols: list = ["EURUSD"], timeframe: str = "1h", config_json: str = "{}") -> None:  # noqa: B006
        # Steps that read or change the database's current state must run every time, even with caching on.
        materialized = c.materialize_features(symbols=symbols, timeframe=timeframe).set_caching_options(False)
        with dsl.ParallelFor(symbols, parallelism=SERIES_PARALLELISM, name="each-series") as symbol:
            series_set = c.build_training_set(symbol=symbol, timeframe=timeframe).after(materialized)
            series_set.set_caching_options(False)
        training_set = c.merge_training_sets(parts=dsl.Collected(series_set.outputs["training_set"]))
        training_set.set_caching_options(False)
        trained = c.train(training_set=training_set.outputs["training_set"], config_json=config_json)
        c.evaluate(model=trained.outputs["model"])
        decided = c.gate(model=trained.outputs["model"])
        with dsl.If(decided.outputs["decision"] == "approved", name="approved"):
            c.register(model=trained.outputs["model"], decision="approved",
                       reasons=decided.outputs["reasons"]).set_display_name("register-approved").set_caching_options(False)
        with dsl.Else(name="rejected"):
            c.register(model=trained.outputs["model"], decision="rejected",
                       reasons=decided.outputs["reasons"]).set_display_name("register-rejected").set_caching_options(False)

    return lstm_training
