"""The gate under search says yes to a real edge and no to luck: a small search on a market with a strong planted
lag-10 signal is approved; the same search on a random walk is not, whatever its best trial's backtest says."""

from __future__ import annotations

import pytest

from aicash.indicators import with_indicators
from aicash.market.synth import planted_market
from aicash.settings import Settings
from aicash.training.config import TrainingConfig
from aicash.training.dataset import build_samples
from aicash.training.search import SearchResult, run_search
from aicash.training.search_space import load_space, plan_trials

BASE = TrainingConfig(window_bars=16, n_folds=3, reference_rows=200)
# Four small trials of different kinds, as a real search has: PBO asks whether picking the best in sample picks a
# good one out of sample, which is a coin toss (PBO near 0.5) among trials that are all equally good.
SPACE = """
sampler: grid
families:
  linear: {learning_rate: [0.01], max_epochs: 8}
  lightgbm: {num_leaves: [7], n_estimators: [60]}
  tcn: {hidden_size: [8], num_layers: [1], max_epochs: 4}
  lstm: {hidden_size: [8], max_epochs: 3}
"""


def _search(strength: float, seed: int) -> SearchResult:
    samples = build_samples(with_indicators(planted_market(3000, strength, seed=seed)), BASE)
    specs = plan_trials(load_space(SPACE), 4, seed=0, base=BASE)
    return run_search(samples, specs, settings=Settings.model_validate({}))


@pytest.fixture(scope="module", params=[1, 2])
def strong(request: pytest.FixtureRequest) -> SearchResult:
    return _search(0.5, seed=request.param)


def test_a_strong_planted_signal_is_approved(strong: SearchResult) -> None:
    decision = strong.result.decision
    assert decision is not None and decision.approved, decision
    search = strong.result.search
    assert search is not None and search["trials"] == 4 and search["selected_trial"] == strong.winner.number
    assert search["deflated_sharpe"]["probability"] >= 0.95 and search["pbo"]["probability"] <= 0.5
    assert any("directional accuracy of traded signals" in p for p in decision.passed)


def test_the_linear_family_can_win_against_baselines_other_than_itself(strong: SearchResult) -> None:
    """The logistic baseline reads the same signal as the zoo's linear family: a linear winner is not held to
    beating its own kind, only the other baselines."""
    decision = strong.result.decision
    assert decision is not None
    compared = " ".join(decision.passed + decision.reasons)
    assert strong.winner.spec.family == "linear" and decision.approved  # on these seeds linear is the best trial
    assert "logistic" not in compared and "rule" in compared


@pytest.mark.parametrize("seed", [1, 2])
def test_a_random_walk_is_not_approved(seed: int) -> None:
    found = _search(0.0, seed)
    decision = found.result.decision
    assert decision is not None and not decision.approved
    assert found.result.search is not None and found.result.search["trials"] == 4
