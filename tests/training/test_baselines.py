import numpy as np

from aicash.signals.rule import composite_score, rule_signal
from aicash.training import train_and_evaluate
from aicash.training.baselines import LogisticBaseline, MajorityClass, RuleBaseline
from aicash.training.dataset import build_samples
from aicash.training.walk_forward import MODEL_KEY
from tests.support.training import TINY

TRAIN, TEST = np.arange(0, 300), np.arange(300, 400)


def test_majority_predicts_the_most_frequent_training_class_with_its_frequency(synth):
    samples = build_samples(synth, TINY)
    baseline = MajorityClass(confidence_threshold=0.99)
    baseline.fit(samples, TRAIN)
    pred = baseline.predict(samples, TEST)
    counts = np.bincount(samples.label[TRAIN], minlength=3)
    assert (pred.predicted == counts.argmax()).all()
    assert np.allclose(pred.confidence, counts.max() / len(TRAIN)) and not pred.traded.any()


def test_rule_baseline_is_the_platforms_rule_signal_on_the_decision_bar(synth):
    samples = build_samples(synth, TINY)
    pred = RuleBaseline().predict(samples, TEST)
    score = composite_score(samples.last_bar(TEST))
    assert np.array_equal(pred.predicted, rule_signal(score).to_numpy())
    assert np.allclose(pred.confidence, score.abs()) and np.array_equal(pred.traded, pred.predicted != 1)


def test_logistic_gives_three_probabilities_even_when_a_class_is_missing_in_training(synth):
    samples = build_samples(synth, TINY)
    no_sell = TRAIN[samples.label[TRAIN] != 0]
    baseline = LogisticBaseline(confidence_threshold=0.4)
    baseline.fit(samples, no_sell)
    pred = baseline.predict(samples, TEST)
    assert pred.proba.shape == (len(TEST), 3) and (pred.proba[:, 0] == 0).all() and (pred.predicted != 0).all()


def test_several_series_are_evaluated_on_the_same_folds_as_one_portfolio(synth):
    result = train_and_evaluate(synth, TINY)
    assert result.data["series"] == ["SYN001/1h", "SYN002/1h"]
    n = result.model_metrics.samples
    assert all(m.samples == n for m in result.aggregate.values())
    assert MODEL_KEY == "model"
    assert list(result.equity.columns) == [MODEL_KEY, "majority", "logistic", "rule", "buy_and_hold"]
    assert result.equity.index.is_monotonic_increasing and result.equity.index.is_unique
    assert np.isclose(result.equity[MODEL_KEY].iloc[-1], result.model_metrics.cumulative_return)
    assert 0.2 < result.model_metrics.accuracy < 0.7  # a random walk: no edge, no leak
