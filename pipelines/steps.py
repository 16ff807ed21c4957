"""The work behind each pipeline component, as plain functions (testable without KFP).

They read the settings from the environment, as every aicash process does, so a component behaves the same in
KFP's local runner and in the cluster's platform image.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from aicash.db.engine import ready_engine
from aicash.indicators import INDICATOR_COLUMNS
from aicash.market.store import load_candles
from aicash.model_input import MODEL_NAME
from aicash.settings import load_settings
from aicash.training.artifact_files import read_metrics

if TYPE_CHECKING:
    from aicash.training.search import SearchResult

Log = Callable[[str], None]


def materialize_features(symbols: list[str], timeframe: str, log: Log = print) -> str:
    """Check that each requested series has candles (a run on a missing one stops here, naming it and the fix),
    then apply the Feast repository and materialize the latest features, offline tables and online store. Feast
    materializes whole feature views, so every series is refreshed, the requested ones among them."""
    from aicash.market.ingest import count_bars
    from features.store import apply, materialize

    settings = load_settings()
    engine = ready_engine(settings)
    missing = [symbol for symbol in symbols if count_bars(engine, symbol, timeframe) == 0]
    if missing:
        raise ValueError(f"no {timeframe} candles for {missing}: run `aicash data ingest` first")
    apply(settings)
    summary = materialize(settings)
    requested = ", ".join(f"{symbol}/{timeframe}" for symbol in symbols) or f"every {timeframe} series"
    log(f"materialized features (requested: {requested}): {summary}")
    return str(summary)


def build_training_set(symbols: list[str], timeframe: str, out_path: str, log: Log = print) -> int:
    """Every bar of the symbols as an entity row, features joined point in time by Feast, plus close prices
    (for labels). Rows still in the indicators' warm-up are dropped."""
    from features.training_join import training_frame

    settings = load_settings()
    candles = load_candles(ready_engine(settings), symbols or None, timeframe)
    if candles.empty:
        raise ValueError(f"no {timeframe} candles for {symbols or 'any symbol'}: run `aicash data ingest` first")
    entities = candles[["symbol", "timeframe", "ts"]].rename(columns={"ts": "event_timestamp"})
    frame = training_frame(settings, entities)
    frame = frame.rename(columns={"event_timestamp": "ts"}).assign(close=candles["close"].to_numpy())
    frame = frame.dropna(subset=list(INDICATOR_COLUMNS)).reset_index(drop=True)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out_path, index=False)
    log(f"training set: {len(frame):,} rows of {frame['symbol'].nunique()} series -> {out_path}")
    return len(frame)


def merge_training_sets(paths: list[str], out_path: str, log: Log = print) -> int:
    """The per-series training sets (`build_training_set`) as one file, sorted by symbol, timeframe and bar time
    whatever order the tasks finished in."""
    frame = pd.concat([pd.read_parquet(path) for path in paths], ignore_index=True)
    frame = frame.sort_values(["symbol", "timeframe", "ts"], kind="stable").reset_index(drop=True)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out_path, index=False)
    log(f"training set: {len(frame):,} rows of {frame['symbol'].nunique()} series ({len(paths)} parts) -> {out_path}")
    return len(frame)


def train(training_set_path: str, config_json: str, model_dir: str, log: Log = print) -> dict[str, Any]:
    """Walk-forward evaluation against the baselines, then the final network; writes the artifact folder."""
    from aicash.training.config import TrainingConfig
    from aicash.training.experiment import train_and_evaluate
    from aicash.training.gating import gate

    settings = load_settings()
    config = TrainingConfig.model_validate_json(config_json or "{}")
    frame = pd.read_parquet(training_set_path)

    def progress(event: Any) -> None:
        log(str(event))

    result = train_and_evaluate(frame, config, progress=progress)
    result.save(model_dir, gate(result, settings))
    return read_metrics(model_dir)


def plan_trials(space_text: str, trials: int, seed: int, config_json: str, log: Log = print) -> list[str]:
    """The search's trials (each a `TrialSpec` as JSON) drawn from the space (YAML or JSON text); a bad space or
    trial count stops the run here, naming the field and the fix."""
    from aicash.training.search_space import plan_from_text

    specs = plan_from_text(space_text, trials, seed, config_json)
    for spec in specs:
        log(f"trial {spec.number}: {spec.family} {json.dumps(spec.params, sort_keys=True)}")
    return [spec.to_json() for spec in specs]


def run_trial(training_set_path: str, spec_json: str, out_dir: str, log: Log = print) -> str:
    """One trial's walk-forward on the training set; writes its folder (per-bar returns after costs, figures) and
    returns its one-line summary."""
    from aicash.training.dataset import build_samples
    from aicash.training.search import run_trial as trial
    from aicash.training.search_space import TrialSpec

    spec = TrialSpec.from_json(spec_json)
    log(f"trial {spec.number}: {spec.family} {json.dumps(spec.params, sort_keys=True)}")
    samples = build_samples(pd.read_parquet(training_set_path), spec.config)
    outcome = trial(samples, spec, progress=lambda event: log(str(event)))
    outcome.save(out_dir)
    log(outcome.summary())
    return outcome.summary()


def select_and_train(
    training_set_path: str, trial_dirs: list[str], model_dir: str, report_path: str, *, symbols: list[str],
    timeframe: str, space_text: str, seed: int, pipeline: str = "model-search", log: Log = print,
) -> str:
    """Select the trial with the best out-of-sample Sharpe after costs, train it against the baselines with the
    search's evidence (DSR, PBO) and the gate's decision, record the experiment with every trial, and write the
    artifact folder (its metrics.json's search block names the experiment) and the HTML search report."""
    from aicash.experiments import record_experiment
    from aicash.training.dataset import build_samples
    from aicash.training.search import SEARCH_REPORT_FILE, SearchResult, TrialOutcome, train_winner
    from aicash.training.search_space import read_space

    settings = load_settings()
    outcomes = sorted((TrialOutcome.load(d) for d in trial_dirs), key=lambda o: o.number)
    frame = pd.read_parquet(training_set_path)
    samples = build_samples(frame, outcomes[0].spec.config)
    result, winner = train_winner(samples, outcomes, lambda event: log(str(event)), settings)
    search = SearchResult(outcomes, winner, result)
    space = read_space(space_text)
    experiment_id = record_experiment(
        ready_engine(settings), pipeline=pipeline, series=[f"{s}/{timeframe}" for s in symbols], timeframe=timeframe,
        space=space, seed=seed, sampler=str(space.get("sampler", "random")), trials=search.records(),
        search=result.search or {}, equity=result.equity,
    )
    result.search = {**(result.search or {}), "experiment_id": experiment_id}
    assert result.decision is not None  # noqa: S101 - train_winner gates with the settings
    result.save(model_dir, result.decision)
    html = _search_report(experiment_id, search)
    Path(report_path).parent.mkdir(parents=True, exist_ok=True)
    Path(report_path).write_text(html, encoding="utf-8")
    (Path(model_dir) / SEARCH_REPORT_FILE).write_text(html, encoding="utf-8")
    block = result.search
    pbo = block.get("pbo") or {}
    line = (f"winner trial {winner.number} of {len(outcomes)} ({winner.spec.family}): Sharpe "
            f"{winner.metrics.sharpe:.2f}, DSR {block['deflated_sharpe']['probability']:.3f}, PBO "
            + (f"{pbo['probability']:.3f}" if pbo else "n/a") + f", experiment {experiment_id}")
    log(line)
    return line


def _search_report(experiment_id: int, search: SearchResult) -> str:
    """The experiment's HTML report: the trials' Sharpe ratios against luck, the winner's equity, the gate."""
    from aicash.experiments import get_experiment, render_search_report

    experiment = get_experiment(ready_engine(load_settings()), experiment_id)
    decision = search.result.decision
    return render_search_report(experiment, experiment["trials"], search.result.equity,
                                None if decision is None else decision.to_dict())


def evaluation_figures(model_dir: str) -> dict[str, Any]:
    """Flat out-of-sample figures of the model and each baseline, the class names and the confusion matrix."""
    figures = read_metrics(model_dir)
    aggregate = figures["aggregate"]
    flat = {f"model_{k}": float(v) for k, v in aggregate["model"].items() if _is_number(v)}
    for baseline, values in aggregate["baselines"].items():
        wanted = ("accuracy", "win_rate", "sharpe")
        flat |= {f"{baseline}_{k}": float(values[k]) for k in wanted if _is_number(values.get(k))}
    return {"metrics": flat, "classes": figures["classes"], "confusion_matrix": aggregate["model"]["confusion"]}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value


def gate_model(model_dir: str) -> tuple[bool, list[str]]:
    """The approval gate over the saved out-of-sample figures (MIN_* settings)."""
    from aicash.training.gating import EvaluationSummary, gate

    summary = EvaluationSummary.from_metrics_json(read_metrics(model_dir))
    decision = gate(summary, load_settings())
    return decision.approved, list(decision.reasons)


def register(model_dir: str, approved: bool, reasons: list[str], actor: str = "pipeline") -> str:
    """Upload the artifacts and record the version as `approved` or `rejected` with the gate's reasons; a model
    search's winner (metrics.json's search block names its experiment) is linked to its experiment."""
    from aicash.registry import new_version, register_model, store_for

    settings = load_settings()
    engine = ready_engine(settings)
    metrics = read_metrics(model_dir)
    record = register_model(
        engine, store_for(settings), name=MODEL_NAME, version=new_version(Path(model_dir)),
        artifacts_dir=Path(model_dir), metrics=metrics, approved=approved, reasons=reasons, actor=actor,
    )
    experiment_id = (metrics.get("search") or {}).get("experiment_id")
    if experiment_id is not None:  # a model-search winner: its experiment now names the version and the decision
        from aicash.experiments import link_version

        link_version(engine, int(experiment_id), record.version, "approved" if approved else "rejected", reasons)
    return record.version


def optimize_weights(symbols: list[str], timeframe: str, source: str, log: Log = print) -> dict[str, Any]:
    """Optimize the rule signal's weights from backtests (`backtest`) or real trades (`trades`)."""
    from aicash.signals.optimize import optimize_from_backtest, optimize_from_trades

    engine = ready_engine(load_settings())
    if source == "backtest":
        from aicash.market.store import summarize

        symbols = symbols or sorted({s.symbol for s in summarize(engine) if s.timeframe == timeframe})
        result = optimize_from_backtest(engine, symbols, timeframe)
    else:
        result = optimize_from_trades(engine)
    log(f"{source}: improves={result.improves}")
    return result.to_dict()


def save_weights_if_better(result: dict[str, Any], actor: str = "pipeline", log: Log = print) -> str:
    """Write the weights as a new version when they beat the weights in force out of sample. Returns what
    happened: `saved version N`, or `not saved: ...` with both out-of-sample figures (the refusal's reason)."""
    from aicash.signals.weights import WeightsNotImprovedError, WeightsResult, save_weights

    weights = WeightsResult.from_dict(result)
    try:
        version = save_weights(ready_engine(load_settings()), weights, actor=actor)
    except WeightsNotImprovedError as exc:
        outcome = f"not saved: {exc}"
    else:
        outcome = (f"saved version {version}: out-of-sample {weights.objective} {weights.oos_score:.4f} beats "
                   f"{weights.baseline_oos_score:.4f}")
    log(f"{weights.source}: {outcome}")
    return outcome
