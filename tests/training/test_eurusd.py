"""The default configuration on the real EURUSD hourly sample: it runs in budget and shows no sign of a leak."""

import pytest

from aicash.indicators import with_indicators
from aicash.market.samples import load_sample
from aicash.settings import Settings
from aicash.training import TrainingConfig, train_and_evaluate


@pytest.mark.slow
def test_default_walk_forward_on_eurusd_runs_in_budget_without_a_leak():
    frame = with_indicators(load_sample("eurusd-1h").assign(symbol="EURUSD", timeframe="1h"))
    result = train_and_evaluate(frame, TrainingConfig(), settings=Settings(_env_file=None))
    assert result.timings["total_seconds"] < 120
    assert result.data["samples"] > 4800 and result.data["series"] == ["EURUSD/1h"]
    # hourly FX direction is close to unpredictable: far above the majority class would mean a leak
    majority = result.baseline_metrics["majority"].accuracy
    assert result.model_metrics.accuracy < majority + 0.1
    assert result.model_metrics.accuracy > majority - 0.1
    # five checks and the deflated Sharpe ratio; one trial: no PBO
    assert result.decision is not None and len(result.decision.reasons) + len(result.decision.passed) == 6
