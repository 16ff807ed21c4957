from types import SimpleNamespace

from aicash.training.gating import EvaluationSummary, gate
from aicash.training.metrics import Metrics

SETTINGS = SimpleNamespace(min_training_samples=1000, min_accuracy=0.55, min_win_rate=0.5)


def _m(accuracy=0.6, win_rate=0.56, trades=200, sharpe=1.5) -> Metrics:
    return Metrics(samples=1000, accuracy=accuracy, trades=trades, coverage=trades / 1000, win_rate=win_rate,
                   average_confidence=0.6, calibration_error=0.03, cumulative_return=0.05, sharpe=sharpe,
                   confusion=[[1, 0, 0], [0, 1, 0], [0, 0, 1]])


BASELINES = {"majority": _m(accuracy=0.47, win_rate=None, trades=0, sharpe=0.0), "rule": _m(0.44, 0.45, 300, -1.4)}


def test_a_model_that_passes_every_check_is_approved():
    decision = gate(EvaluationSummary(4000, _m(), BASELINES), SETTINGS)
    assert decision.approved and decision.reasons == []
    assert len(decision.passed) == 5
    assert "accuracy 0.600 vs best baseline majority 0.470" in " ".join(decision.passed)


def test_each_failure_is_named_with_its_numbers():
    weak = _m(accuracy=0.46, win_rate=0.42, trades=200, sharpe=-0.3)
    decision = gate(EvaluationSummary(500, weak, BASELINES), SETTINGS)
    assert not decision.approved
    text = "\n".join(decision.reasons)
    assert "training samples 500 (minimum 1000)" in text
    assert "out-of-sample accuracy 0.460 (minimum 0.550)" in text
    assert "win rate 0.420 over 200 trades" in text
    assert "accuracy 0.460 vs best baseline majority 0.470 (must be higher)" in text
    assert "Sharpe -0.30 vs best baseline majority 0.00 (must be higher)" in text
    assert len(decision.reasons) == 5


def test_a_model_that_never_trades_or_trades_too_little_fails_the_win_rate():
    silent = gate(EvaluationSummary(4000, _m(win_rate=None, trades=0), BASELINES), SETTINGS)
    assert not silent.approved and any("n/a (no trades)" in r for r in silent.reasons)
    lucky = gate(EvaluationSummary(4000, _m(win_rate=0.9, trades=10), BASELINES), SETTINGS)
    assert not lucky.approved and any("over 10 trades" in r and "at least 30" in r for r in lucky.reasons)


def test_beating_thresholds_is_not_enough_when_a_baseline_is_better():
    strong_rule = {**BASELINES, "rule": _m(accuracy=0.62, win_rate=0.6, trades=300, sharpe=2.0)}
    decision = gate(EvaluationSummary(4000, _m(), strong_rule), SETTINGS)
    assert not decision.approved
    assert decision.reasons == [
        "failed: accuracy 0.600 vs best baseline rule 0.620 (must be higher)",
        "failed: Sharpe 1.50 vs best baseline rule 2.00 (must be higher)",
    ]


def test_the_gate_reads_metrics_json_back():
    data = {"training_samples": 4000, "aggregate": {"model": _m().to_dict(),
                                                   "baselines": {k: v.to_dict() for k, v in BASELINES.items()}}}
    assert gate(EvaluationSummary.from_metrics_json(data), SETTINGS).approved
