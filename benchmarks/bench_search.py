"""Model-search figures: is the gate honest under search, how strong must a signal be for it to say yes, how each
family does on real and planted data, and what a search costs.

- False approvals: 20 random walks (planted strength 0, 6,000 hourly bars each, one seed each) x 16 trials from
  `SEARCH_SPACE`: how many winners the gate approves (expected 0; more than 1 would mean it is not honest).
- Power: markets whose returns follow their own value 10 bars earlier with a graded strength (`STRENGTHS`), one
  16-trial search each: the weakest strength at which the winner is approved.
- Families x data: each family with its default parameters on the EURUSD sample and on a planted market
  (strength 0.3): out-of-sample accuracy, directional accuracy, information coefficient and Sharpe after costs,
  next to the baselines.
- Time: 16 trials of the default space (pipelines/search_space.yaml) on the EURUSD sample through the in-process
  search (`run_search`, one after the other on one core), and trials per minute.

The synthetic searches run two at a time (one per core, one torch thread each), the timed one alone. Tables go to
benchmarks/results/search.md; the rows to the benchmark table.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from aicash.indicators import with_indicators
from aicash.market.samples import load_sample
from aicash.market.synth import planted_market
from aicash.settings import Settings
from aicash.training.config import FAMILY_PARAMETERS, TrainingConfig
from aicash.training.dataset import build_samples
from benchmarks.common import Row, row

BARS = 6000
TRIALS = 16
FALSE_APPROVAL_SEEDS = tuple(range(1, 21))
STRENGTHS = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4)
FAMILY_STRENGTH = 0.3
WORKERS = 2
DEFAULT_SPACE = Path("pipelines/search_space.yaml")
# The synthetic searches' space: every family, sized down (fewer epochs and units) so that 25 searches of 16 trials
# fit in about half an hour on two cores. The gate's correction depends on the number of trials and the spread of
# their Sharpe ratios, not on the trials' size.
SEARCH_SPACE = """
sampler: random
families:
  lstm: {hidden_size: [8, 16], dropout: {low: 0.0, high: 0.3}, learning_rate: {low: 0.002, high: 0.01, log: true},
         max_epochs: 5, patience: 2}
  gru: {hidden_size: [8, 16], dropout: {low: 0.0, high: 0.3}, learning_rate: {low: 0.002, high: 0.01, log: true},
        max_epochs: 5, patience: 2}
  tcn: {hidden_size: [8, 16], num_layers: [4, 5], kernel_size: 3, learning_rate: {low: 0.002, high: 0.01, log: true},
        max_epochs: 5, patience: 2}
  linear: {learning_rate: {low: 0.001, high: 0.03, log: true}, weight_decay: {low: 0.00001, high: 0.01, log: true}}
  lightgbm: {num_leaves: [7, 15, 31], n_estimators: [100, 200], min_child_samples: [10, 20, 50],
             tree_learning_rate: {low: 0.02, high: 0.1, log: true}}
"""
RESULTS = Path("benchmarks/results/search.md")


def _settings() -> Settings:
    """The gate's defaults (MIN_* and MAX_PBO), whatever this shell's environment says."""
    return Settings.model_validate({})


def _search(frame: pd.DataFrame, space_text: str, seed: int) -> dict[str, Any]:
    """One search of TRIALS trials on `frame`; the winner, the evidence and the gate's decision."""
    from aicash.training.search import run_search
    from aicash.training.search_space import load_space, plan_trials

    start = time.perf_counter()
    samples = build_samples(frame, TrainingConfig())
    found = run_search(samples, plan_trials(load_space(space_text), TRIALS, seed), settings=_settings())
    result, search = found.result, found.result.search or {}
    pbo = search.get("pbo")
    decision = result.decision
    return {
        "winner": f"{found.winner.spec.family} (trial {found.winner.number})",
        "sharpe": result.model_metrics.sharpe,
        "dsr": search["deflated_sharpe"]["probability"],
        "sr0": search["deflated_sharpe"]["expected_max_sharpe"],
        "pbo": None if pbo is None else pbo["probability"],
        "approved": bool(decision and decision.approved),
        "reasons": [] if decision is None else list(decision.reasons),
        # what a gate blind to the search would have done: every other check passed
        "approved_without_correction": bool(decision) and all(_is_search_check(r) for r in decision.reasons),
        "seconds": time.perf_counter() - start,
    }


def _is_search_check(reason: str) -> bool:
    return "deflated Sharpe" in reason or "backtest overfitting" in reason or "PBO" in reason


def _planted_search(strength: float, seed: int) -> dict[str, Any]:
    frame = with_indicators(planted_market(BARS, strength, seed=seed))
    return {"strength": strength, "seed": seed, **_search(frame, SEARCH_SPACE, seed)}


def _eurusd() -> pd.DataFrame:
    return with_indicators(load_sample("eurusd-1h").assign(symbol="EURUSD", timeframe="1h"))


def _eurusd_search() -> dict[str, Any]:
    return _search(_eurusd(), DEFAULT_SPACE.read_text(encoding="utf-8"), 0)


def _family_rows(data: str) -> list[dict[str, Any]]:
    """Each family with its default parameters on `data` (eurusd or planted), the baselines from the first."""
    from aicash.training.experiment import evaluate_samples

    frame = _eurusd() if data == "eurusd" else with_indicators(planted_market(BARS, FAMILY_STRENGTH, seed=99))
    rows = []
    for number, family in enumerate(FAMILY_PARAMETERS):
        config = TrainingConfig(family=family)
        result = evaluate_samples(build_samples(frame, config), config)
        figures = {"model": result.model_metrics}
        if number == 0:
            figures |= result.baseline_metrics
        for name, m in figures.items():
            rows.append({"data": data, "predictor": family if name == "model" else f"baseline: {name}",
                         "accuracy": m.accuracy, "directional_accuracy": m.directional_accuracy,
                         "ic": m.information_coefficient, "sharpe": m.sharpe, "trades": m.trades})
    return rows


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _write(false_runs: list[dict[str, Any]], power: list[dict[str, Any]], families: list[dict[str, Any]],
           eurusd: dict[str, Any]) -> None:  # fmt: skip
    lines = ["# Model search figures (`python -m benchmarks search`)", "",
             f"## False approvals: random walks ({BARS:,} bars) x {TRIALS} trials", "",
             "| seed | winner | Sharpe (ann.) | DSR | SR0 (per bar) | PBO | approved | without DSR/PBO |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['seed']} | {r['winner']} | {r['sharpe']:.2f} | {r['dsr']:.3f} | {r['sr0']:.4f} | "
              f"{_pct(r['pbo'])} | {'yes' if r['approved'] else 'no'} | "
              f"{'approved' if r['approved_without_correction'] else 'rejected'} |" for r in false_runs]
    lines += ["", f"## Power: planted lag-10 signal ({BARS:,} bars) x {TRIALS} trials", "",
              "| strength | winner | Sharpe (ann.) | DSR | PBO | approved | first failed check |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['strength']} | {r['winner']} | {r['sharpe']:.2f} | {r['dsr']:.3f} | {_pct(r['pbo'])} | "
              f"{'yes' if r['approved'] else 'no'} | {(r['reasons'] or [''])[0]} |" for r in power]
    lines += ["", "## Families x data (default parameters, walk-forward out of sample)", "",
              "| data | predictor | accuracy | directional accuracy (traded) | IC | Sharpe after costs | trades |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['data']} | {r['predictor']} | {r['accuracy']:.3f} | {_pct(r['directional_accuracy'])} | "
              f"{_pct(r['ic'])} | {r['sharpe']:.2f} | {r['trades']} |" for r in families]
    lines += ["", f"## EURUSD sample, {TRIALS} trials of the default space", "",
              f"winner {eurusd['winner']}, Sharpe {eurusd['sharpe']:.2f}, DSR {eurusd['dsr']:.3f}, "
              f"PBO {_pct(eurusd['pbo'])}, {'approved' if eurusd['approved'] else 'rejected'}; "
              f"{eurusd['seconds']:.0f} s ({TRIALS / eurusd['seconds'] * 60:.1f} trials/min)", ""]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines), encoding="utf-8")


def run() -> list[Row]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    start = time.perf_counter()
    with ProcessPoolExecutor(WORKERS) as pool:
        family_jobs = [pool.submit(_family_rows, data) for data in ("eurusd", "planted")]
        false_jobs = [pool.submit(_planted_search, 0.0, seed) for seed in FALSE_APPROVAL_SEEDS]
        power_jobs = [pool.submit(_planted_search, strength, 1) for strength in STRENGTHS]
        false_runs = [job.result() for job in false_jobs]
        power = [job.result() for job in power_jobs]
        families = [r for job in family_jobs for r in job.result()]
    eurusd = _eurusd_search()  # alone, on one core, as a timing
    _write(false_runs, power, families, eurusd)
    approved = sum(r["approved"] for r in false_runs)
    uncorrected = sum(r["approved_without_correction"] for r in false_runs)
    weakest = next((r["strength"] for r in power if r["approved"]), None)
    return [
        row(f"false approvals: random walks x {TRIALS} trials ({len(false_runs)} seeds)", approved, "approved",
            "0 (at most 1)", approved <= 1),
        row(f"the same winners passing every check but DSR and PBO ({len(false_runs)} seeds)", uncorrected,
            "would be approved"),
        row("power: weakest planted lag-10 strength approved", weakest if weakest is not None else float("nan"),
            "AR coefficient", f"any of {', '.join(map(str, STRENGTHS))}", weakest is not None),
        row(f"{TRIALS} trials, default space, EURUSD sample (in process)", eurusd["seconds"], "s", "< 240 s",
            eurusd["seconds"] < 240),
        row("search throughput, EURUSD sample", TRIALS / eurusd["seconds"] * 60, "trials/min"),
        row("whole search benchmark", time.perf_counter() - start, "s"),
    ]
