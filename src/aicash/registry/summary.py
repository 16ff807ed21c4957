"""What `GET /models` says of a registered version: its out-of-sample figures, the gate's decision and the range
of its training data, read from the metrics it was registered with (the trainer's `metrics.json`).

A figure the registered metrics do not hold is None, never a default: a version registered without
`aggregate.model` (or before a figure existed) reports nulls rather than invented values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aicash.registry.lifecycle import ModelRecord

SELL, BUY = 0, 2  # rows and columns of the trainer's confusion matrix: SELL, HOLD, BUY


@dataclass(frozen=True)
class TrainingData:
    """The series a version was trained on and the time span of its bars (`last`: the latest bar it used,
    labels included, when recorded; else its latest decision bar)."""

    series: list[str]
    first: datetime | None
    last: datetime | None
    samples: int | None

    def to_dict(self) -> dict[str, Any]:
        return {"series": self.series, "first": _iso(self.first), "last": _iso(self.last), "samples": self.samples}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        return None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp


def directional_accuracy(confusion: Any) -> float | None:
    """Of the samples where both the model and the outcome took a direction (BUY or SELL), the share where the
    directions agree; None without such samples or without a 3x3 confusion matrix. The directional accuracy of
    versions registered before the trainer reported its own (of the traded signals)."""
    try:
        agree = confusion[SELL][SELL] + confusion[BUY][BUY]
        total = agree + confusion[SELL][BUY] + confusion[BUY][SELL]
    except (TypeError, IndexError, KeyError):
        return None
    return float(agree / total) if isinstance(total, int | float) and total > 0 else None


def evaluation(metrics: dict[str, Any]) -> dict[str, float | int | None]:
    """The model's pooled out-of-sample figures (`aggregate.model`): accuracy, directional accuracy of traded
    signals, win rate and trades, Sharpe after costs, average confidence, information coefficient; and the search
    that produced it (`search`): trials, deflated Sharpe ratio, probability of backtest overfitting."""
    aggregate = metrics.get("aggregate")
    model = aggregate.get("model") if isinstance(aggregate, dict) else None
    model = model if isinstance(model, dict) else {}
    trades = _number(model.get("trades"))
    # the trainer's own figure (traded signals against the return's sign); versions registered before it existed:
    # the confusion matrix's, of the samples where both the model and the label took a direction
    directional = (_number(model.get("directional_accuracy")) if "directional_accuracy" in model
                   else directional_accuracy(model.get("confusion")))
    search = metrics.get("search")
    search = search if isinstance(search, dict) else {}
    trials = _number(search.get("trials"))
    return {
        "accuracy": _number(model.get("accuracy")),
        "directional_accuracy": directional,
        "win_rate": _number(model.get("win_rate")),
        "trades": None if trades is None else int(trades),
        "sharpe_after_costs": _number(model.get("sharpe")),
        "average_confidence": _number(model.get("average_confidence")),
        "information_coefficient": _number(model.get("information_coefficient")),
        "trials": None if trials is None else int(trials),
        "deflated_sharpe": _probability(search.get("deflated_sharpe")),
        "pbo": _probability(search.get("pbo")),
    }


def _probability(block: Any) -> float | None:
    return _number(block.get("probability")) if isinstance(block, dict) else None


def training_data(metrics: dict[str, Any]) -> TrainingData | None:
    """The training data's series and span (`data` of metrics.json); None when the version has none recorded."""
    data = metrics.get("data")
    if not isinstance(data, dict):
        return None
    series = [str(s) for s in data.get("series") or [] if isinstance(s, str)]
    samples = _number(data.get("samples"))
    last = _time(data.get("last_bar_ts")) or _time(data.get("last_ts"))
    return TrainingData(series, _time(data.get("first_ts")), last, None if samples is None else int(samples))


def trained_timeframe(metrics: dict[str, Any]) -> str | None:
    """The one timeframe of the series the version was trained on (`data.series`, "SYMBOL/TIMEFRAME"); None when
    it names none or several."""
    data = training_data(metrics)
    timeframes = {s.rpartition("/")[2] for s in data.series if "/" in s} if data is not None else set()
    return timeframes.pop() if len(timeframes) == 1 else None


def version_summary(record: ModelRecord) -> dict[str, Any]:
    """One registered version as `GET /models` lists it."""
    data = training_data(record.metrics)
    return {
        "version": record.version,
        "status": record.status,
        "role": record.role,
        "traffic_percentage": record.traffic_percentage,
        "metrics": evaluation(record.metrics),
        "gate": {"passed": record.gate_passed, "reasons": list(record.reasons)},
        "training_data": None if data is None else data.to_dict(),
        "created_at": record.created_at.isoformat(),
    }
