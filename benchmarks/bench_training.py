"""Training figures on the real EURUSD hourly sample: walk-forward train+evaluate time, training throughput,
artifact writing, and the out-of-sample figures next to the best baseline (default `TrainingConfig`)."""

from __future__ import annotations

import tempfile
import time

from aicash.indicators import with_indicators
from aicash.market.samples import load_sample
from aicash.training import TrainingConfig, train_and_evaluate
from benchmarks.common import Row, row, timed

PIPELINE_BUDGET_S = 180.0  # the whole local pipeline (features, training, registry) must fit in 3 minutes


def run() -> list[Row]:
    frame = with_indicators(load_sample("eurusd-1h").assign(symbol="EURUSD", timeframe="1h"))
    config = TrainingConfig()
    start = time.perf_counter()
    result = train_and_evaluate(frame, config)
    seconds = time.perf_counter() - start
    with tempfile.TemporaryDirectory(prefix="aicash-bench-model-") as folder:
        save_seconds = timed(lambda: result.save(folder))
    rate = result.timings["training_samples_per_second"]
    samples = result.data["samples"]
    model = result.model_metrics
    best = max(result.baseline_metrics.items(), key=lambda kv: kv[1].accuracy)
    best_sharpe = max(result.baseline_metrics.items(), key=lambda kv: kv[1].sharpe)
    return [
        row(f"walk-forward train+evaluate, EURUSD 1h ({samples:,} samples, {config.n_folds} folds + final)",
            seconds, "s", f"< {PIPELINE_BUDGET_S:.0f} s (whole local pipeline)", seconds < PIPELINE_BUDGET_S),
        row(f"training throughput (LSTM {config.window_bars}x16, hidden {config.hidden_size}, "
            f"{config.torch_threads} thread)", rate, "samples/s", ">= 5,000 samples/s", rate >= 5000),
        row("write artifacts (TorchScript, report, reference)", save_seconds, "s", "< 10 s", save_seconds < 10),
        row("out-of-sample accuracy, network", model.accuracy, "share"),
        row(f"out-of-sample accuracy, best baseline ({best[0]})", best[1].accuracy, "share"),
        row("out-of-sample Sharpe after 1 bp, network", model.sharpe, "annualised"),
        row(f"out-of-sample Sharpe after 1 bp, best baseline ({best_sharpe[0]})", best_sharpe[1].sharpe, "annualised"),
    ]
