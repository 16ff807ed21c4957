"""The promotion gate: directional accuracy of traded signals, the baselines other than the winner's own kind, and
the search evidence (deflated Sharpe ratio, probability of backtest overfitting), each reason with its numbers."""

from types import SimpleNamespace

import numpy as np

from aicash.training.gating import MIN_DEFLATED_SHARPE, EvaluationSummary, gate
from aicash.training.overfitting import search_evidence
from tests.support.evaluation import figures as _m
from tests.support.evaluation import search_block as _search

SETTINGS = SimpleNamespace(min_training_samples=1000, min_accuracy=0.55, min_win_rate=0.5, max_pbo=0.5)


BASELINES = {"majority": _m(accuracy=0.47, win_rate=None, trades=0, sharpe=0.0, directional=None),
             "logistic": _m(0.5, 0.5, 250, 0.4, directional=0.52), "rule": _m(0.44, 0.45, 300, -1.4, 0.48)}


def _summary(model=None, baselines=BASELINES, family="lstm", search=None, samples=4000) -> EvaluationSummary:
    return EvaluationSummary(samples, model or _m(), baselines, family, _search() if search is None else search)


def test_a_model_that_passes_every_check_is_approved():
    decision = gate(_summary(), SETTINGS)
    assert decision.approved and decision.reasons == []
    assert len(decision.passed) == 7
    text = " ".join(decision.passed)
    assert "out-of-sample directional accuracy of traded signals 0.600 (minimum 0.550)" in text
    assert "directional accuracy of traded signals 0.600 vs best baseline logistic 0.520" in text
    assert ("deflated Sharpe ratio 0.990 (minimum 0.95): Sharpe 0.0500 per period vs SR0 0.0300, the best of 16 "
            "trials expected by luck") in text
    assert "probability of backtest overfitting 0.100 (maximum 0.50) over 12870 splits of 16 trials" in text


def test_each_failure_is_named_with_its_numbers():
    weak = _m(accuracy=0.46, win_rate=0.42, trades=200, sharpe=-0.3, directional=0.47)
    decision = gate(_summary(weak, search=_search(dsr=0.4, pbo=0.7), samples=500), SETTINGS)
    assert not decision.approved
    text = "\n".join(decision.reasons)
    assert "training samples 500 (minimum 1000)" in text
    assert "out-of-sample directional accuracy of traded signals 0.470 (minimum 0.550)" in text
    assert "win rate 0.420 over 200 trades" in text
    assert "directional accuracy of traded signals 0.470 vs best baseline logistic 0.520 (must be higher)" in text
    assert "Sharpe -0.30 vs best baseline logistic 0.40 (must be higher)" in text
    assert "failed: deflated Sharpe ratio 0.400 (minimum 0.95)" in text
    assert "failed: probability of backtest overfitting 0.700 (maximum 0.50)" in text
    assert len(decision.reasons) == 7


def test_three_class_accuracy_no_longer_decides_directional_accuracy_does():
    """A model that trades half the bars well but calls HOLD badly: 0.42 three-class accuracy, 0.63 direction."""
    trader = _m(accuracy=0.42, directional=0.63, sharpe=10.6, win_rate=0.63)
    assert gate(_summary(trader), SETTINGS).approved
    coin = _m(accuracy=0.7, directional=0.5)
    assert any("directional accuracy of traded signals 0.500 (minimum 0.550)" in r
               for r in gate(_summary(coin), SETTINGS).reasons)


def test_a_model_that_never_trades_or_trades_too_little_fails():
    silent = gate(_summary(_m(win_rate=None, trades=0, directional=None)), SETTINGS)
    assert not silent.approved
    assert "failed: out-of-sample directional accuracy of traded signals n/a (no trades) (minimum 0.550)" in (
        silent.reasons)
    assert any("win rate n/a (no trades)" in r for r in silent.reasons)
    lucky = gate(_summary(_m(win_rate=0.9, trades=10)), SETTINGS)
    assert not lucky.approved and any("over 10 trades" in r and "at least 30" in r for r in lucky.reasons)


def test_beating_thresholds_is_not_enough_when_a_baseline_is_better():
    strong_rule = {**BASELINES, "rule": _m(accuracy=0.62, win_rate=0.6, trades=300, sharpe=2.0, directional=0.64)}
    decision = gate(_summary(baselines=strong_rule), SETTINGS)
    assert not decision.approved
    assert decision.reasons == [
        "failed: directional accuracy of traded signals 0.600 vs best baseline rule 0.640 (must be higher)",
        "failed: Sharpe 1.50 vs best baseline rule 2.00 (must be higher)",
    ]


def test_a_winner_is_not_compared_with_its_own_kind():
    """The linear family is the logistic baseline: when it wins, it is compared with the others only."""
    strong_logistic = {**BASELINES, "logistic": _m(sharpe=1.5, directional=0.6)}  # the same model, as a baseline
    assert not gate(_summary(baselines=strong_logistic, family="lstm"), SETTINGS).approved
    linear = gate(_summary(baselines=strong_logistic, family="linear"), SETTINGS)
    assert linear.approved, linear.reasons
    assert not any("logistic" in p for p in linear.passed)


def test_baselines_that_never_trade_are_beaten_on_direction():
    silent = {"majority": BASELINES["majority"]}
    decision = gate(_summary(baselines=silent), SETTINGS)
    assert decision.approved
    assert "passed: directional accuracy of traded signals 0.600 vs baselines: none of them trades" in (
        decision.passed)


def test_no_search_evidence_fails_and_a_single_run_is_judged_on_its_deflated_sharpe_alone():
    missing = gate(_summary(search={}), SETTINGS)
    assert missing.reasons == ["failed: deflated Sharpe ratio (minimum 0.95): no search evidence"]
    single = gate(_summary(search=_search(dsr=0.97, pbo=None, trials=1)), SETTINGS)
    assert single.approved and not any("overfitting" in p for p in single.passed)
    assert any("the best of 1 trial expected by luck" in p for p in single.passed)


def test_the_gate_reads_search_evidence_computed_from_returns():
    rng = np.random.default_rng(5)
    edge = rng.normal(0.002, 0.01, 3000)  # per-period Sharpe about 0.2 over 3,000 bars: far above luck
    noise = rng.normal(0.0, 0.01, (3000, 15))
    trials = np.column_stack([edge, noise])
    sharpes = trials.mean(axis=0) / trials.std(axis=0, ddof=1)
    search = search_evidence(edge, sharpes, trials)
    assert search["deflated_sharpe"]["probability"] >= MIN_DEFLATED_SHARPE and search["pbo"]["probability"] < 0.1
    assert gate(_summary(search=search), SETTINGS).approved
    silent = search_evidence(np.zeros(3000), [0.0])  # a model that never trades: no Sharpe ratio, DSR 0
    decision = gate(_summary(search=silent), SETTINGS)
    assert any(r.startswith("failed: deflated Sharpe ratio 0.000") and "no deflated Sharpe ratio" in r
               for r in decision.reasons)


def test_the_gate_reads_metrics_json_back():
    data = {"training_samples": 4000, "search": {**_search(), "family": "linear"},
            "aggregate": {"model": _m().to_dict(), "baselines": {k: v.to_dict() for k, v in BASELINES.items()}}}
    summary = EvaluationSummary.from_metrics_json(data)
    assert summary.family == "linear" and summary.search is not None
    assert gate(summary, SETTINGS).approved


def test_an_older_metrics_json_reads_as_an_lstm_without_search_evidence():
    newer = ("directional_accuracy", "information_coefficient")
    old_model = {k: v for k, v in _m().to_dict().items() if k not in newer}
    summary = EvaluationSummary.from_metrics_json(
        {"training_samples": 4000, "config": {"horizon_bars": 4}, "aggregate": {"model": old_model, "baselines": {}}})
    assert summary.family == "lstm" and summary.search is None
    assert summary.model_metrics.directional_accuracy is None
    decision = gate(summary, SETTINGS)
    assert "failed: deflated Sharpe ratio (minimum 0.95): no search evidence" in decision.reasons
    config_family = {"training_samples": 4000, "config": {"family": "gru"},
                     "aggregate": {"model": _m().to_dict(), "baselines": {}}}
    assert EvaluationSummary.from_metrics_json(config_family).family == "gru"
