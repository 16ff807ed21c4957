"""Out-of-sample figures of a signal: classification, calibration and trading after costs.

Trading convention: a traded signal at bar t opens a position of 1/horizon of capital in its direction, held for
`horizon` bars, and pays `cost_per_trade` on that notional. Overlapping signals therefore add up to at most
full capital, and the per-bar portfolio return is what the Sharpe ratio is computed from (booking each trade's
whole horizon return at once would overstate it). Across series the portfolio is an equal-weight mean per bar.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

from aicash.signals.rule import SIGNALS
from aicash.training.dataset import Samples
from aicash.training.labels import DOWN, FLAT, UP

CALIBRATION_BINS = 10
# The guide's model targets, reported beside the out-of-sample figures (training report, `aicash models show`); the
# gate's own minimums are settings (MIN_ACCURACY, MIN_WIN_RATE), the live ones alerts (MIN_LIVE_*).
GUIDE_TARGETS: dict[str, float] = {"accuracy": 0.65, "win_rate": 0.55, "average_confidence": 0.70}


def guide_targets(figures: Mapping[str, object]) -> list[tuple[str, float | None, float, bool]]:
    """(figure, value, target, met) for each of the guide's targets in `figures` (a `Metrics.to_dict()`); a missing
    value (a win rate without trades) does not meet its target."""
    rows = []
    for key, target in GUIDE_TARGETS.items():
        value = figures.get(key)
        number = float(value) if isinstance(value, int | float) else None
        rows.append((key, number, target, number is not None and number > target))
    return rows


@dataclass(frozen=True)
class Predictions:
    """One predictor's answers for some samples: class, confidence in it, and whether it is traded."""

    predicted: np.ndarray  # (n,) class 0/1/2
    confidence: np.ndarray  # (n,) in [0, 1]
    traded: np.ndarray  # (n,) bool: a BUY/SELL acted on
    proba: np.ndarray | None = None  # (n, 3) when the predictor gives probabilities

    @classmethod
    def from_proba(cls, proba: np.ndarray, threshold: float) -> Predictions:
        """Argmax class; traded when it is BUY or SELL with probability >= threshold."""
        predicted = proba.argmax(axis=1)
        confidence = proba.max(axis=1).astype(np.float64)
        return cls(predicted, confidence, (predicted != FLAT) & (confidence >= threshold), proba)

    def __len__(self) -> int:
        return len(self.predicted)

    @staticmethod
    def concat(parts: list[Predictions]) -> Predictions:
        probas = [p.proba for p in parts]
        return Predictions(
            np.concatenate([p.predicted for p in parts]),
            np.concatenate([p.confidence for p in parts]),
            np.concatenate([p.traded for p in parts]),
            None if any(p is None for p in probas) else np.concatenate(probas),  # type: ignore[arg-type]
        )

    @property
    def signs(self) -> np.ndarray:
        """Position direction per sample: +1 BUY, -1 SELL, 0 not traded."""
        return np.where(self.traded, self.predicted - 1, 0).astype(np.int64)


@dataclass(frozen=True)
class Metrics:
    """A predictor's out-of-sample figures over some samples."""

    samples: int
    accuracy: float
    trades: int
    coverage: float  # share of samples traded
    win_rate: float | None  # share of trades whose horizon return has the signal's sign after cost; None: no trade
    average_confidence: float
    calibration_error: float  # expected calibration error of the predicted class, 10 bins
    cumulative_return: float  # sum of per-bar log returns of the strategy, after costs
    sharpe: float  # annualised, from per-bar strategy returns; 0 without trades
    confusion: list[list[int]]  # rows: true class, columns: predicted class (SELL, HOLD, BUY)
    # of the traded signals, the share whose direction is the sign of the horizon return (before costs); None: no trade
    directional_accuracy: float | None = None
    # Spearman rank correlation of P(BUY) - P(SELL) with the horizon return; None without probabilities
    information_coefficient: float | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Metrics:
        """From `to_dict()` output; the figures added later (directional accuracy, IC) may be absent: None."""
        optional = {"directional_accuracy", "information_coefficient"}
        return cls(**{name: data.get(name) if name in optional else data[name]  # type: ignore[arg-type]
                      for name in cls.__dataclass_fields__})


def evaluate(pred: Predictions, samples: Samples, idx: np.ndarray, cost: float) -> Metrics:
    """Figures of `pred` (aligned with `idx`, in time order) against the samples' realised labels and returns."""
    labels = samples.label[idx]
    correct = pred.predicted == labels
    signs = pred.signs
    trades = int(np.count_nonzero(signs))
    wins = signs * samples.horizon_return[idx] - cost > 0
    returns = strategy_returns(samples, idx, signs, cost)
    n = len(idx)
    return Metrics(
        samples=n,
        accuracy=float(correct.mean()) if n else 0.0,
        trades=trades,
        coverage=trades / n if n else 0.0,
        win_rate=float(wins[signs != 0].mean()) if trades else None,
        average_confidence=float(pred.confidence.mean()) if n else 0.0,
        calibration_error=expected_calibration_error(pred.confidence, correct),
        cumulative_return=float(returns.sum()),
        sharpe=sharpe_ratio(returns.to_numpy(), samples.bars_per_year) if trades else 0.0,
        confusion=confusion_matrix(labels, pred.predicted).tolist(),
        directional_accuracy=directional_accuracy(signs, samples.horizon_return[idx]),
        information_coefficient=information_coefficient(pred.proba, samples.horizon_return[idx]),
    )


def directional_accuracy(signs: np.ndarray, horizon_return: np.ndarray) -> float | None:
    """Of the traded signals (`signs` +1/-1, 0 not traded), the share whose direction is the sign of the realised
    horizon return, before costs (a flat return matches neither); None without trades."""
    traded = signs != 0
    if not traded.any():
        return None
    return float(np.mean(signs[traded] == np.sign(horizon_return[traded])))


def information_coefficient(proba: np.ndarray | None, horizon_return: np.ndarray) -> float | None:
    """Spearman rank correlation of P(BUY) - P(SELL) with the horizon return, over every sample (the field's usual
    IC); None without probabilities, with fewer than 3 samples, or when either side is constant."""
    if proba is None or len(proba) < 3:
        return None
    score = proba[:, UP] - proba[:, DOWN]
    if np.ptp(score) == 0 or np.ptp(horizon_return) == 0:
        return None
    rho = float(stats.spearmanr(score, horizon_return).statistic)
    return rho if np.isfinite(rho) else None


def strategy_returns(samples: Samples, idx: np.ndarray, signs: np.ndarray, cost: float) -> pd.Series:
    """Per-bar portfolio log return after costs, indexed by time (see the module docstring for the convention)."""
    h = samples.horizon
    series = samples.series[idx]
    pnl = np.zeros(len(idx))
    for s in np.unique(series):
        at = np.flatnonzero(series == s)
        sig = signs[at].astype(np.float64)
        position = np.convolve(sig, np.ones(h))[: len(sig)] / h  # signals of the last h bars, 1/h each
        pnl[at] = position * samples.next_return[idx[at]] - cost * np.abs(sig) / h
    return pd.Series(pnl, index=pd.DatetimeIndex(samples.ts[idx], name="ts")).groupby(level=0).mean()


def sharpe_ratio(returns: np.ndarray, periods_per_year: float) -> float:
    std = float(np.std(returns, ddof=1)) if len(returns) > 1 else 0.0
    return float(np.mean(returns) / std * np.sqrt(periods_per_year)) if std > 0 else 0.0


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Sum over confidence bins of (bin share) x |accuracy - mean confidence|."""
    table = reliability_table(confidence, correct, bins)
    if table["count"].sum() == 0:
        return 0.0
    weights = table["count"] / table["count"].sum()
    return float((weights * (table["accuracy"] - table["confidence"]).abs()).fillna(0.0).sum())


def reliability_table(confidence: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """Per confidence bin: mean confidence, accuracy and count (the reliability diagram's data)."""
    which = np.clip((np.asarray(confidence) * bins).astype(int), 0, bins - 1)
    frame = pd.DataFrame({"bin": which, "confidence": confidence, "correct": np.asarray(correct, dtype=float)})
    grouped = frame.groupby("bin").agg(confidence=("confidence", "mean"), accuracy=("correct", "mean"),
                                       count=("correct", "size"))
    table = grouped.reindex(range(bins))
    table["count"] = table["count"].fillna(0).astype(int)
    table.insert(0, "lower", np.arange(bins) / bins)
    return table


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """3 x 3 counts; rows are the true class, columns the predicted one, in SIGNALS order."""
    k = len(SIGNALS)
    return np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)
