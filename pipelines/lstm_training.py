"""Pipeline `lstm-training`: materialize features -> training set (point in time) -> train -> evaluate -> gate ->
register, with the gate deciding through `dsl.If` whether the version is registered approved or rejected."""

from kfp import dsl

from pipelines.components import make_components

NAME = "lstm-training"


def build(image: str):  # type: ignore[no-untyped-def]
    """The pipeline function for the platform image `image`."""
    c = make_components(image)

    @dsl.pipeline(name=NAME, description="Train the signal LSTM, evaluate it walk-forward against baselines, "
                                         "gate it and register it.")
    def lstm_training(symbols: list = ["EURUSD"], timeframe: str = "1h", config_json: str = "{}") -> None:  # noqa: B006
        # Steps that read or change the database's current state must run every time, even with caching on.
        materialized = c.materialize_features(symbols=symbols, timeframe=timeframe).set_caching_options(False)
        training_set = c.build_training_set(symbols=symbols, timeframe=timeframe).after(materialized)
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
