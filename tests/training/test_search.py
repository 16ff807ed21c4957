"""The search in process on tiny data: the winner is the trial with the best out-of-sample Sharpe after costs, its
final run reproduces its trial's figures, the search block carries every trial's evidence, and a search of one
trial is exactly a single-configuration run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from aicash.training.dataset import build_samples
from aicash.training.experiment import evaluate_samples
from aicash.training.search import TrialOutcome, run_search, run_trial, select_winner
from aicash.training.search_space import load_space, plan_trials
from tests.support.training import TINY, synth_frame

SPACE = """
families:
  lstm: {hidden_size: [4, 8], max_epochs: 2}
  linear: {max_epochs: 2}
  lightgbm: {n_estimators: 20}
"""


@pytest.fixture(scope="module")
def samples():  # type: ignore[no-untyped-def]
    return build_samples(synth_frame(), TINY)


@pytest.fixture(scope="module")
def search(samples):  # type: ignore[no-untyped-def]
    specs = plan_trials(load_space(SPACE), 3, seed=1, base=TINY)
    return run_search(samples, specs)


def test_the_winner_is_the_trial_with_the_best_out_of_sample_sharpe(search) -> None:  # type: ignore[no-untyped-def]
    sharpes = {o.number: o.metrics.sharpe for o in search.outcomes}
    assert len(sharpes) == 3 and search.winner.number == max(sharpes, key=lambda n: sharpes[n])
    # the winner's final walk-forward (with the baselines) reproduces its trial's figures exactly
    assert search.result.model_metrics == search.winner.metrics
    assert search.result.config == search.winner.spec.config
    assert set(search.result.baseline_metrics) == {"majority", "logistic", "rule"}
    records = search.records()
    assert [r["selected"] for r in records].count(True) == 1
    assert next(r for r in records if r["selected"])["number"] == search.winner.number
    assert set(records[0]) == {"number", "family", "params", "accuracy", "directional_accuracy", "win_rate", "trades",
                               "coverage", "calibration_error", "sharpe", "information_coefficient", "seconds",
                               "selected"}


def test_the_search_block_carries_every_trials_evidence(search) -> None:  # type: ignore[no-untyped-def]
    block = search.result.search
    assert block["trials"] == 3 and block["selected_trial"] == search.winner.number
    assert block["family"] == search.winner.spec.family and block["params"] == search.winner.spec.params
    assert block["experiment_id"] is None  # the pipeline records the experiment and fills it in
    sharpes = [o.period_sharpe for o in search.outcomes]
    assert block["sharpe_variance"] == pytest.approx(np.var(sharpes, ddof=1))
    dsr = block["deflated_sharpe"]
    assert dsr["n_trials"] == 3 and dsr["sharpe"] == pytest.approx(search.winner.period_sharpe)
    assert dsr["observations"] == len(search.winner.returns) and 0.0 <= dsr["probability"] <= 1.0
    assert block["pbo"]["n_trials"] == 3 and 0.0 <= block["pbo"]["probability"] <= 1.0
    # every trial is scored on the same bars: the same folds
    assert all(o.returns.index.equals(search.winner.returns.index) for o in search.outcomes)


def test_a_search_of_one_trial_is_a_single_configuration_run(samples) -> None:  # type: ignore[no-untyped-def]
    [spec] = plan_trials(load_space("families: {lstm: {hidden_size: 8, max_epochs: 2}}"), 1, base=TINY)
    one = run_search(samples, [spec])
    single = evaluate_samples(samples, spec.config)
    assert one.result.model_metrics == single.model_metrics
    for key in ("trials", "sharpe_variance", "deflated_sharpe", "pbo", "selected_trial", "family"):
        assert one.result.search[key] == single.search[key], key
    assert one.result.search["trials"] == 1 and one.result.search["pbo"] is None


def test_a_trial_folder_round_trips(search, tmp_path) -> None:  # type: ignore[no-untyped-def]
    outcome = search.outcomes[0]
    loaded = TrialOutcome.load(outcome.save(tmp_path / "trial"))
    assert loaded.spec == outcome.spec and loaded.metrics == outcome.metrics
    pd.testing.assert_series_equal(loaded.returns, outcome.returns, check_names=False, check_freq=False)
    assert loaded.record() == outcome.record()


def test_ties_go_to_the_first_trial_and_no_trial_is_refused(samples) -> None:  # type: ignore[no-untyped-def]
    [spec] = plan_trials(load_space("families: {lightgbm: {n_estimators: 5}}"), 1, base=TINY)
    outcome = run_trial(samples, spec)
    twin = TrialOutcome(spec.__class__(2, spec.family, spec.params, spec.config), outcome.metrics, outcome.returns,
                        outcome.seconds)
    assert select_winner([twin, outcome]).number == 1
    with pytest.raises(ValueError, match="no trial"):
        select_winner([])
