"""Baselines the network must beat, fitted and scored on exactly the same walk-forward folds.

- majority: always the most frequent training class, with its training frequency as confidence;
- logistic: multinomial logistic regression on the decision bar's stationary features (scikit-learn);
- rule: the platform's weighted-indicator rule signal (`composite_score` + `rule_signal`), confidence |score|.
  Its confidence is a score, not a probability; it trades whenever it says BUY or SELL.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from aicash.signals.rule import DEFAULT_THRESHOLD, DEFAULT_WEIGHTS, composite_score, rule_signal
from aicash.training.dataset import Samples
from aicash.training.labels import FLAT
from aicash.training.metrics import Predictions
from aicash.training.network import N_CLASSES
from aicash.training.transform import IndicatorTransform


class Baseline(Protocol):
    name: str

    def fit(self, samples: Samples, idx: np.ndarray) -> None: ...

    def predict(self, samples: Samples, idx: np.ndarray) -> Predictions: ...


class MajorityClass:
    name = "majority"

    def __init__(self, confidence_threshold: float) -> None:
        self.threshold = confidence_threshold
        self.prior = np.full(N_CLASSES, 1.0 / N_CLASSES)

    def fit(self, samples: Samples, idx: np.ndarray) -> None:
        counts = np.bincount(samples.label[idx], minlength=N_CLASSES).astype(np.float64)
        self.prior = counts / counts.sum()

    def predict(self, samples: Samples, idx: np.ndarray) -> Predictions:
        return Predictions.from_proba(np.tile(self.prior, (len(idx), 1)), self.threshold)


class LogisticBaseline:
    name = "logistic"

    def __init__(self, confidence_threshold: float, seed: int = 0) -> None:
        self.threshold = confidence_threshold
        self.seed = seed
        self.model: Pipeline | None = None

    @staticmethod
    def features(samples: Samples, idx: np.ndarray) -> np.ndarray:
        """The decision bar's stationary features (the same relative transform the network sees)."""
        last = samples.rows[samples.end_row[idx]][:, None, :]
        with torch.no_grad():
            return IndicatorTransform(samples.features).stationary(torch.from_numpy(last))[:, 0, :].double().numpy()

    def fit(self, samples: Samples, idx: np.ndarray) -> None:
        self.model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=self.seed))
        self.model.fit(self.features(samples, idx), samples.label[idx])

    def predict(self, samples: Samples, idx: np.ndarray) -> Predictions:
        if self.model is None:
            raise RuntimeError("fit the logistic baseline before predicting")
        proba = np.zeros((len(idx), N_CLASSES))
        proba[:, self.model.classes_] = self.model.predict_proba(self.features(samples, idx))
        return Predictions.from_proba(proba, self.threshold)


class RuleBaseline:
    name = "rule"

    def fit(self, samples: Samples, idx: np.ndarray) -> None:
        """Nothing to fit: default weights and threshold."""

    def predict(self, samples: Samples, idx: np.ndarray) -> Predictions:
        score = composite_score(samples.last_bar(idx), DEFAULT_WEIGHTS)
        predicted = rule_signal(score, DEFAULT_THRESHOLD).to_numpy()
        return Predictions(predicted, score.abs().to_numpy(), predicted != FLAT)


def baselines(confidence_threshold: float, seed: int) -> list[Baseline]:
    return [MajorityClass(confidence_threshold), LogisticBaseline(confidence_threshold, seed), RuleBaseline()]
