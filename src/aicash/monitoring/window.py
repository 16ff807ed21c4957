"""Time windows (`24h`, `7d`) and the logged predictions inside one, as a frame of features and answers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select

from aicash.db.models import Prediction
from aicash.indicators import INDICATOR_COLUMNS

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_CHUNK = 2_000  # ids per query when reading a sample


class BadWindowError(ValueError):
    """A window like `24h` could not be read."""


def parse_duration(text: str, option: str = "--since") -> timedelta:
    """`30m`, `24h`, `7d`, `2w` -> timedelta; anything else raises `BadWindowError` naming the option."""
    match = _DURATION.match(text or "")
    if not match or float(match.group(1)) <= 0:
        raise BadWindowError(f"{option} {text!r} is not a duration: use a number and a unit m/h/d/w, e.g. 24h or 7d")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def utc(value: datetime) -> datetime:
    """Aware UTC datetime; naive values (SQLite gives those back) are taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    @classmethod
    def last(cls, span: timedelta, end: datetime | None = None) -> Window:
        end = utc(end or datetime.now(UTC))
        return cls(end - span, end)

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M} UTC"


def count_predictions(engine: Engine, window: Window) -> int:
    with engine.connect() as conn:
        query = select(func.count()).select_from(Prediction).where(
            Prediction.created_at >= window.start, Prediction.created_at < window.end
        )
        return int(conn.execute(query).scalar_one())


def load_predictions(engine: Engine, window: Window, ids: list[int] | None = None) -> pd.DataFrame:
    """Logged predictions in the window (only those of `ids` when given): id, symbol, model_version, latency_ms,
    created_at, signal, confidence and one column per indicator (NaN where a row lacks it), oldest first."""
    query = (
        select(
            Prediction.id, Prediction.symbol, Prediction.model_version, Prediction.latency_ms, Prediction.created_at,
            Prediction.output["signal"].as_string().label("signal"),
            Prediction.output["confidence"].as_float().label("confidence"),
            Prediction.features,
        )
        .where(Prediction.created_at >= window.start, Prediction.created_at < window.end)
        .order_by(Prediction.id)
    )
    if ids is not None:
        query = query.where(Prediction.id.in_(ids))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    head = pd.DataFrame(
        [r[:7] for r in rows],
        columns=["id", "symbol", "model_version", "latency_ms", "created_at", "signal", "confidence"],
    )
    features = pd.DataFrame.from_records([r[7] or {} for r in rows], columns=list(INDICATOR_COLUMNS))
    frame = pd.concat([head, features.astype("float64")], axis=1)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame


@dataclass(frozen=True)
class WindowSample:
    """Up to `max_rows` predictions of a window drawn uniformly at random, with the window's totals."""

    frame: pd.DataFrame  # as `load_predictions`, only the sampled rows
    total: int  # predictions in the window
    signals: dict[tuple[str, str], int]  # (model_version, signal) -> count over the whole window


def sample_predictions(engine: Engine, window: Window, max_rows: int, seed: int = 7) -> WindowSample:
    """Like `load_predictions`, but reads the features (the costly JSON) of at most `max_rows` rows.

    Ids, versions and signals of the whole window are read first (cheap: no feature JSON), then a seeded uniform
    sample of ids is fetched in chunks."""
    in_window = (Prediction.created_at >= window.start, Prediction.created_at < window.end)
    signal = Prediction.output["signal"].as_string()
    with engine.connect() as conn:
        head = conn.execute(select(Prediction.id, Prediction.model_version, signal).where(*in_window)).all()
    counts: dict[tuple[str, str], int] = {}
    for _, version, answer in head:
        counts[(version, answer)] = counts.get((version, answer), 0) + 1
    if len(head) <= max_rows:
        return WindowSample(load_predictions(engine, window), len(head), counts)
    ids = np.sort(np.random.default_rng(seed).choice(np.array([r[0] for r in head]), max_rows, replace=False))
    parts = [load_predictions(engine, window, ids=ids[i : i + _CHUNK].tolist()) for i in range(0, len(ids), _CHUNK)]
    return WindowSample(pd.concat(parts, ignore_index=True), len(head), counts)
