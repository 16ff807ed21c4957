"""Pipeline `signal-weights`: optimize the rule signal's weights from backtests on candles and from real trades,
each checked out of sample, and save a new version only when it beats the weights in force."""

from kfp import dsl

from pipelines.components import make_components

NAME = "signal-weights"


def build(image: str, timeout_seconds: int):  # type: ignore[no-untyped-def]
    """The pipeline function for the platform image `image`, stopped by KFP after `timeout_seconds`."""
    c = make_components(image)

    @dsl.pipeline(name=NAME, description="Optimize the indicator weights of the rule signal out of sample.",
                  pipeline_config=dsl.PipelineConfig(active_deadline_seconds=timeout_seconds))
    def signal_weights(symbols: list = ["EURUSD"], timeframe: str = "1h", use_trades: bool = False) -> None:  # noqa: B006
        backtest = c.optimize_weights(symbols=symbols, timeframe=timeframe, source="backtest")
        saved = c.save_weights(result_json=backtest.output)
        with dsl.If(use_trades == True, name="from-trades"):  # noqa: E712 - a KFP condition, not Python
            trades = c.optimize_weights(symbols=symbols, timeframe=timeframe, source="trades").after(saved)
            c.save_weights(result_json=trades.output)

    return signal_weights
