"""`train_and_evaluate`: candles with indicators in, a deployable network and its honest figures out."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from aicash.indicators import INDICATOR_COLUMNS
from aicash.signals.rule import SIGNALS
from aicash.training.config import FAMILY_PARAMETERS, TrainingConfig
from aicash.training.dataset import Samples, build_samples
from aicash.training.families import make_learner
from aicash.training.gating import GateThresholds, gate
from aicash.training.metrics import evaluate, reliability_table, strategy_returns
from aicash.training.overfitting import search_evidence
from aicash.training.result import TrainingResult
from aicash.training.trainer import ProgressCallback
from aicash.training.walk_forward import MODEL_KEY, OutOfSample, final_split, run_walk_forward


def train_and_evaluate(
    frame: pd.DataFrame,
    config: TrainingConfig | None = None,
    progress: ProgressCallback | None = None,
    settings: GateThresholds | None = None,
) -> TrainingResult:
    """Walk-forward evaluation of the model (`config.family`) and baselines, then the final model on all data.

    `frame`: candles with indicators of one or more series (columns symbol, timeframe, ts, close and
    MODEL_FEATURES), e.g. Feast's historical features joined to close prices. With `settings` the gate
    decision is attached to the result.
    """
    config = config or TrainingConfig()
    start = time.perf_counter()
    samples = build_samples(frame, config)
    return evaluate_samples(samples, config, progress, settings, started=start)


def evaluate_samples(
    samples: Samples,
    config: TrainingConfig,
    progress: ProgressCallback | None = None,
    settings: GateThresholds | None = None,
    started: float | None = None,
    search: dict[str, Any] | None = None,
) -> TrainingResult:
    """`train_and_evaluate` on prepared samples (tests use it to shuffle labels).

    `search`: the search evidence (metrics.json's "search" block) of the search that chose this configuration;
    without it the run counts as a search of one trial.
    """
    start = time.perf_counter() if started is None else started
    wf_start = time.perf_counter()
    folds, oos = run_walk_forward(samples, config, progress)
    wf_seconds = time.perf_counter() - wf_start

    final = final_split(samples, config)
    learner = make_learner(config, progress, stage="final")
    final_fit = learner.fit(samples, final.fit, final.validation)

    fits = [f.fit for f in folds] + [final_fit]
    fit_seconds = sum(f.seconds for f in fits)
    result = TrainingResult(
        config=config,
        learner=learner,
        final_fit=final_fit,
        folds=folds,
        aggregate={name: evaluate(p, samples, oos.idx, config.cost_per_trade) for name, p in oos.predictions.items()},
        equity=_equity(samples, oos, config.cost_per_trade),
        reliability={
            name: reliability_table(p.confidence, p.predicted == samples.label[oos.idx])
            for name, p in oos.predictions.items()
        },
        reference=_reference(samples, final.fit, config.reference_rows),
        data=_describe(samples, oos),
        timings={
            "walk_forward_seconds": wf_seconds,
            "final_fit_seconds": final_fit.seconds,
            "total_seconds": time.perf_counter() - start,
            "training_samples_per_second": sum(f.samples_seen for f in fits) / fit_seconds if fit_seconds else 0.0,
        },
        search=single_trial_search(samples, oos, config) if search is None else search,
    )
    if settings is not None:
        result.decision = gate(result, settings)
    return result


def single_trial_search(samples: Samples, oos: OutOfSample, config: TrainingConfig) -> dict[str, Any]:
    """metrics.json's "search" block of a single-configuration run: one trial, the model's out-of-sample returns."""
    returns = strategy_returns(samples, oos.idx, oos.predictions[MODEL_KEY].signs, config.cost_per_trade).to_numpy()
    sharpe = float(returns.mean() / returns.std(ddof=1)) if len(returns) > 1 and returns.std(ddof=1) > 0 else 0.0
    return {
        "experiment_id": None, "trials": 1, "selected_trial": 1, "family": config.family,
        "params": {name: getattr(config, name) for name in FAMILY_PARAMETERS[config.family]},
        **search_evidence(returns, [sharpe], None),
    }


def _equity(samples: Samples, oos: OutOfSample, cost: float) -> pd.DataFrame:
    curves = {name: strategy_returns(samples, oos.idx, p.signs, cost).cumsum() for name, p in oos.predictions.items()}
    hold = pd.Series(samples.next_return[oos.idx], index=pd.DatetimeIndex(samples.ts[oos.idx], name="ts"))
    curves["buy_and_hold"] = hold.groupby(level=0).mean().cumsum()
    return pd.DataFrame(curves)


def _reference(samples: Samples, idx: np.ndarray, rows: int) -> pd.DataFrame:
    """Up to `rows` decision bars of the final training set, evenly spaced in time (deterministic)."""
    pick = idx[np.unique(np.linspace(0, len(idx) - 1, min(rows, len(idx))).round().astype(int))] if len(idx) else idx
    frame = pd.DataFrame(samples.rows[samples.end_row[pick]].astype(np.float64), columns=list(samples.features))
    return frame[list(INDICATOR_COLUMNS)]


def _describe(samples: Samples, oos: OutOfSample) -> dict[str, object]:
    counts = np.bincount(samples.label, minlength=len(SIGNALS))
    return {
        "series": [f"{symbol}/{timeframe}" for symbol, timeframe in samples.series_keys],
        "samples": len(samples),
        "first_ts": str(pd.Timestamp(samples.ts[0], tz="UTC")) if len(samples) else None,
        "last_ts": str(pd.Timestamp(samples.ts[-1], tz="UTC")) if len(samples) else None,
        # the latest bar the data used (a label's horizon reaches past last_ts): POST /train's new-bar check
        "last_bar_ts": str(pd.Timestamp(samples.label_end_ts.max(), tz="UTC")) if len(samples) else None,
        "out_of_sample_samples": len(oos.idx),
        "class_balance": {name: float(c / max(len(samples), 1)) for name, c in zip(SIGNALS, counts, strict=True)},
        "horizon_bars": samples.horizon,
        "bars_per_year": samples.bars_per_year,
    }
