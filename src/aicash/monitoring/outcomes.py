"""Live outcomes: each logged prediction joined with the candles that followed it, once its horizon has passed.

For a prediction made at `created_at` on (symbol, timeframe):
- the entry bar is the latest candle with `ts <= created_at` (the bar whose indicators the service used);
- the exit bar is the candle `horizon_bars` bars later in the same series (bars, not clock time, as in training);
- the realized return is `log(exit close / entry close)`; the realized signal is BUY / SELL beyond a flat band of
  `flat_threshold x volatility_20 x sqrt(horizon)` and HOLD inside it, exactly the training labels
  (`aicash.training.labels`), with the volatility the prediction itself logged;
- `correct`: the predicted signal equals the realized one; `traded`: a BUY or SELL with confidence at least the
  model's `confidence_threshold`, as in the walk-forward figures; `win`: a traded signal whose signed return beats
  the model's `cost_per_trade`; a traded signal's direction is right when its side has the sign of the realized
  return, before costs (a flat return matches neither), the measure the training gate's MIN_ACCURACY applies to
  (`aicash.training.metrics.directional_accuracy`).
Horizon, band, threshold and cost come from the model's registered metrics (`metrics.json`'s `config`); a version
without them gets the training defaults (4 bars, 0.5, 0.4, 1e-4).

Live figures count **decisions**, not requests: the same model answering the same bar of the same series with the
same signal a thousand times is one decision, since all those answers share one realized outcome. Counting each
request would let one busy symbol dominate the figures and overstate the sample size of the canary's tests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, delete, select, tuple_
from sqlalchemy import insert as insert_rows
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from aicash.db.models import LiveMetrics, MarketCandle, MLModel, Prediction, PredictionOutcome
from aicash.market.candles import TIMEFRAMES
from aicash.model_input import MODEL_NAME
from aicash.monitoring.window import utc
from aicash.signals.rule import SIGNALS
from aicash.training.labels import direction_labels

DEFAULT_TIMEFRAME = "1h"
_NS_UTC = "datetime64[ns, UTC]"
DECISION_KEY = ["model_version", "symbol", "timeframe", "entry_ts", "signal"]
OUTCOME_COLUMNS = [
    "prediction_id", "model_version", "symbol", "timeframe", "signal", "confidence", "predicted_at", "horizon_bars",
    "entry_ts", "exit_ts", "entry_close", "exit_close", "realized_return", "realized_signal", "correct", "traded",
    "win",
]


@dataclass(frozen=True)
class ModelSpec:
    """How a model version's predictions are judged: its label horizon, flat band, trading threshold and cost."""

    horizon_bars: int = 4
    flat_threshold: float = 0.5
    confidence_threshold: float = 0.4
    cost_per_trade: float = 1e-4

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any] | None) -> ModelSpec:
        """Read `config` of metrics.json (as the pipeline registers it); missing values keep the defaults."""
        metrics = metrics or {}
        config = {**(metrics.get("data") or {}), **metrics, **(metrics.get("config") or {})}
        values: dict[str, Any] = {}
        for name, kind in (("horizon_bars", int), ("flat_threshold", float), ("confidence_threshold", float),
                           ("cost_per_trade", float)):
            value = config.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                values[name] = kind(value)
        if values.get("horizon_bars", 1) < 1:
            values.pop("horizon_bars")
        return cls(**values)


def model_specs(engine: Engine, versions: Iterable[str], name: str = MODEL_NAME) -> dict[str, ModelSpec]:
    """Each version's spec from the registry; unregistered versions get the defaults."""
    wanted = sorted(set(versions))
    with engine.connect() as conn:
        rows = conn.execute(select(MLModel.version, MLModel.metrics).where(
            MLModel.name == name, MLModel.version.in_(wanted))).all() if wanted else []
    found = {version: ModelSpec.from_metrics(metrics) for version, metrics in rows}
    return {v: found.get(v, ModelSpec()) for v in wanted}


# -- the join (pure) --------------------------------------------------------------------------------------------
def evaluate(pending: pd.DataFrame, candles: pd.DataFrame, specs: Mapping[str, ModelSpec]) -> pd.DataFrame:
    """Outcome rows (OUTCOME_COLUMNS) of the pending predictions whose exit bar exists in `candles`.

    `pending`: prediction_id, model_version, symbol, timeframe, signal, confidence, volatility_20, created_at (UTC).
    `candles`: symbol, timeframe, ts (UTC), close.
    """
    parts = []
    for (symbol, timeframe), group in pending.groupby(["symbol", "timeframe"], sort=False):
        series = candles[(candles["symbol"] == symbol) & (candles["timeframe"] == timeframe)]
        if series.empty:
            continue
        parts.append(_evaluate_series(group, series.sort_values("ts").reset_index(drop=True), specs))
    if not parts:
        return pd.DataFrame(columns=OUTCOME_COLUMNS)
    return pd.concat(parts, ignore_index=True)[OUTCOME_COLUMNS]


def _evaluate_series(group: pd.DataFrame, series: pd.DataFrame, specs: Mapping[str, ModelSpec]) -> pd.DataFrame:
    bars = series[["ts", "close"]].assign(entry_pos=np.arange(len(series)), ts=series["ts"].astype(_NS_UTC))
    left = group.assign(created_at=group["created_at"].astype(_NS_UTC)).sort_values("created_at").reset_index(drop=True)
    joined = pd.merge_asof(left, bars, left_on="created_at", right_on="ts", direction="backward")
    joined = joined.dropna(subset=["entry_pos"])
    spec_of = [specs.get(v, ModelSpec()) for v in joined["model_version"]]
    horizon = np.array([s.horizon_bars for s in spec_of], dtype=np.int64)
    exit_pos = joined["entry_pos"].to_numpy(dtype=np.int64) + horizon
    ready = exit_pos < len(series)
    joined, horizon, exit_pos = joined[ready], horizon[ready], exit_pos[ready]
    spec_of = [s for s, ok in zip(spec_of, ready, strict=True) if ok]
    if joined.empty:
        return pd.DataFrame(columns=OUTCOME_COLUMNS)
    entry_close = joined["close"].to_numpy(dtype=np.float64)
    exit_close = series["close"].to_numpy(dtype=np.float64)[exit_pos]
    realized = np.log(exit_close / entry_close)
    flat = np.array([s.flat_threshold for s in spec_of])
    volatility = np.nan_to_num(joined["volatility_20"].to_numpy(dtype=np.float64), nan=0.0)
    # direction_labels takes one horizon and threshold; the band is computed per row, so pass them folded in.
    labels = direction_labels(realized, volatility * flat * np.sqrt(horizon), 1, 1.0)
    predicted = joined["signal"].map({name: i for i, name in enumerate(SIGNALS)}).to_numpy()
    confidence = joined["confidence"].to_numpy(dtype=np.float64)
    traded = (predicted != 1) & (confidence >= np.array([s.confidence_threshold for s in spec_of]))
    signed = (predicted - 1) * realized - np.array([s.cost_per_trade for s in spec_of])
    return pd.DataFrame({
        "prediction_id": joined["prediction_id"].to_numpy(dtype=np.int64),
        "model_version": joined["model_version"].to_numpy(),
        "symbol": joined["symbol"].to_numpy(),
        "timeframe": joined["timeframe"].to_numpy(),
        "signal": joined["signal"].to_numpy(),
        "confidence": confidence,
        "predicted_at": joined["created_at"].to_numpy(),
        "horizon_bars": horizon,
        "entry_ts": joined["ts"].to_numpy(),
        "exit_ts": series["ts"].to_numpy()[exit_pos],
        "entry_close": entry_close,
        "exit_close": exit_close,
        "realized_return": realized,
        "realized_signal": np.array(SIGNALS, dtype=object)[labels],
        "correct": predicted == labels,
        "traded": traded,
        "win": np.where(traded, signed > 0, None),
    })


# -- live figures (pure) ----------------------------------------------------------------------------------------
def decisions(outcomes: pd.DataFrame) -> pd.DataFrame:
    """One row per decision (model version, series, entry bar, signal): the first prediction of each."""
    if outcomes.empty:
        return outcomes
    return outcomes.sort_values("prediction_id").drop_duplicates(DECISION_KEY, keep="first")


@dataclass(frozen=True)
class LiveFigures:
    """Accuracy, directional accuracy, win rate and average confidence of one model version over some decisions."""

    decisions: int
    correct: int  # decisions whose signal equals the realized one (three classes: BUY, HOLD, SELL)
    trades: int
    wins: int  # trades whose signed return beats the cost
    mean_trade_return: float | None
    confidence_sum: float = 0.0  # sum of the decisions' confidences (the predicted class's probability)
    direction_hits: int = 0  # trades whose side has the sign of the realized return, before costs

    @property
    def accuracy(self) -> float | None:
        """Three-class accuracy over every decision."""
        return self.correct / self.decisions if self.decisions else None

    @property
    def directional_accuracy(self) -> float | None:
        """Share of the traded signals whose direction was right, before costs: what MIN_ACCURACY applies to."""
        return self.direction_hits / self.trades if self.trades else None

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.trades if self.trades else None

    @property
    def average_confidence(self) -> float | None:
        return self.confidence_sum / self.decisions if self.decisions else None


def figures(outcomes: pd.DataFrame) -> LiveFigures:
    """Figures of already deduplicated decisions (see `decisions`)."""
    traded = outcomes[outcomes["traded"].astype(bool)] if len(outcomes) else outcomes
    signed, hits = None, 0
    if len(traded):
        side = traded["signal"].map({"BUY": 1.0, "SELL": -1.0}).to_numpy(dtype=np.float64)
        returns = side * traded["realized_return"].to_numpy(dtype=np.float64)
        signed, hits = float(np.mean(returns)), int(np.sum(returns > 0))
    return LiveFigures(
        decisions=len(outcomes), correct=int(outcomes["correct"].astype(bool).sum()) if len(outcomes) else 0,
        trades=len(traded), wins=int(traded["win"].astype(bool).sum()) if len(traded) else 0,
        mean_trade_return=signed,
        confidence_sum=float(outcomes["confidence"].astype(float).sum()) if len(outcomes) else 0.0,
        direction_hits=hits,
    )


# -- database ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OutcomeUpdate:
    evaluated: int  # outcomes written by this run
    pending: int  # predictions in the lookback still waiting for their exit bar (or for candles at all)
    days: list[tuple[str, date]]  # (model_version, day) whose live metrics were recomputed


def _pending(engine: Engine, since: datetime) -> pd.DataFrame:
    timeframe = Prediction.request["timeframe"].as_string()
    query = (
        select(
            Prediction.id.label("prediction_id"), Prediction.model_version, Prediction.symbol,
            timeframe.label("timeframe"), Prediction.output["signal"].as_string().label("signal"),
            Prediction.output["confidence"].as_float().label("confidence"),
            Prediction.features["volatility_20"].as_float().label("volatility_20"), Prediction.created_at,
        )
        .outerjoin(PredictionOutcome, PredictionOutcome.prediction_id == Prediction.id)
        .where(PredictionOutcome.prediction_id.is_(None), Prediction.created_at >= since)
    )
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all(), columns=[
            "prediction_id", "model_version", "symbol", "timeframe", "signal", "confidence", "volatility_20",
            "created_at"])
    frame["timeframe"] = frame["timeframe"].fillna(DEFAULT_TIMEFRAME)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame[frame["signal"].isin(SIGNALS) & frame["timeframe"].isin(TIMEFRAMES)]


def _candles(engine: Engine, pending: pd.DataFrame, specs: Mapping[str, ModelSpec]) -> pd.DataFrame:
    """Closes of each pending series from a little before its first prediction on."""
    longest = max((s.horizon_bars for s in specs.values()), default=4)
    parts = []
    with engine.connect() as conn:
        for (symbol, timeframe), group in pending.groupby(["symbol", "timeframe"]):
            # The entry bar may be older than the prediction (weekends, a late feed): look back a few days.
            start = group["created_at"].min() - max(TIMEFRAMES[timeframe] * (longest + 2), pd.Timedelta(days=4))
            rows = conn.execute(select(MarketCandle.ts, MarketCandle.close).where(
                MarketCandle.symbol == symbol, MarketCandle.timeframe == timeframe,
                MarketCandle.ts >= start.to_pydatetime()).order_by(MarketCandle.ts)).all()
            if rows:
                part = pd.DataFrame(rows, columns=["ts", "close"]).assign(symbol=symbol, timeframe=timeframe)
                parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["symbol", "timeframe", "ts", "close"])
    frame = pd.concat(parts, ignore_index=True)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def _utc_datetime(value: Any) -> datetime:
    stamp = pd.Timestamp(value)
    return (stamp.tz_convert("UTC") if stamp.tzinfo else stamp.tz_localize("UTC")).to_pydatetime()


def _records(outcomes: pd.DataFrame) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    records = []
    for row in outcomes.to_dict("records"):
        for key in ("predicted_at", "entry_ts", "exit_ts"):
            row[key] = _utc_datetime(row[key])
        for key in ("correct", "traded"):
            row[key] = bool(row[key])
        row["win"] = None if row["win"] is None or pd.isna(row["win"]) else bool(row["win"])
        row["prediction_id"], row["horizon_bars"] = int(row["prediction_id"]), int(row["horizon_bars"])
        records.append({**row, "evaluated_at": now})
    return records


def update_outcomes(
    engine: Engine, lookback: timedelta = timedelta(days=30), now: datetime | None = None
) -> OutcomeUpdate:
    """Evaluate every prediction of the lookback whose horizon has passed; recompute the touched days' metrics."""
    since = utc(now or datetime.now(UTC)) - lookback
    pending = _pending(engine, since)
    if pending.empty:
        return OutcomeUpdate(0, 0, [])
    specs = model_specs(engine, pending["model_version"].unique())
    outcomes = evaluate(pending, _candles(engine, pending, specs), specs)
    if not outcomes.empty:
        with engine.begin() as conn:
            insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            statement = insert(PredictionOutcome).on_conflict_do_nothing(index_elements=["prediction_id"])
            records = _records(outcomes)
            for start in range(0, len(records), 5_000):
                conn.execute(statement, records[start : start + 5_000])
    days = sorted({(str(v), pd.Timestamp(t).date()) for v, t in zip(
        outcomes["model_version"], pd.to_datetime(outcomes["predicted_at"], utc=True), strict=True)})
    recompute_live_metrics(engine, days)
    return OutcomeUpdate(len(outcomes), len(pending) - len(outcomes), days)


def load_outcomes(
    engine: Engine, start: datetime, end: datetime | None = None, versions: Iterable[str] | None = None
) -> pd.DataFrame:
    """Stored outcomes of predictions made in [start, end)."""
    query = select(*(getattr(PredictionOutcome, c) for c in OUTCOME_COLUMNS)).where(
        PredictionOutcome.predicted_at >= start)
    if end is not None:
        query = query.where(PredictionOutcome.predicted_at < end)
    if versions is not None:
        query = query.where(PredictionOutcome.model_version.in_(list(versions)))
    with engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(query).all(), columns=OUTCOME_COLUMNS)
    for key in ("predicted_at", "entry_ts", "exit_ts"):
        frame[key] = pd.to_datetime(frame[key], utc=True)
    return frame


def recompute_live_metrics(engine: Engine, days: Iterable[tuple[str, date]]) -> None:
    """Replace `live_metrics` rows of the given (version, day) pairs from their stored outcomes."""
    keys = sorted(set(days))
    if not keys:
        return
    first = min(d for _, d in keys)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    outcomes = load_outcomes(engine, start, versions={v for v, _ in keys})
    outcomes["day"] = outcomes["predicted_at"].dt.date
    rows = []
    for (version, day), group in decisions(outcomes).groupby(["model_version", "day"]):
        if (version, day) not in keys:
            continue
        f = figures(group)
        rows.append({"model_version": version, "day": day, "decisions": f.decisions, "correct": f.correct,
                     "accuracy": f.accuracy, "trades": f.trades, "wins": f.wins, "win_rate": f.win_rate,
                     "mean_trade_return": f.mean_trade_return, "updated_at": datetime.now(UTC)})
    with engine.begin() as conn:
        for start_at in range(0, len(keys), 500):
            chunk = keys[start_at : start_at + 500]
            conn.execute(delete(LiveMetrics).where(tuple_(LiveMetrics.model_version, LiveMetrics.day).in_(chunk)))
        if rows:
            conn.execute(insert_rows(LiveMetrics), rows)


def daily_metrics(engine: Engine, since: date) -> pd.DataFrame:
    """`live_metrics` rows from `since` on, newest day first."""
    columns = list(LiveMetrics.__table__.columns)
    query = select(*columns).where(LiveMetrics.day >= since).order_by(LiveMetrics.day.desc(), LiveMetrics.model_version)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return pd.DataFrame(rows, columns=[c.name for c in columns])


def live_figures(engine: Engine, since: datetime, until: datetime | None = None,
                 versions: Iterable[str] | None = None) -> dict[str, LiveFigures]:
    """Per model version: figures over its decisions made in [since, until)."""
    outcomes = decisions(load_outcomes(engine, since, until, versions))
    if outcomes.empty:
        return {}
    return {str(v): figures(g) for v, g in outcomes.groupby("model_version")}

