"""Training samples: windows of `MODEL_FEATURES` per series, labelled at the window's last bar.

A series is one (symbol, timeframe). Rows of all series are stacked in one float32 matrix; a sample is the index
of its window's last row, so windows are gathered on demand (memory stays linear in bars, not bars x window).
No window crosses a series, contains a missing value, or lacks a known label. Samples are sorted by time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from aicash.model_input import MODEL_FEATURES
from aicash.training.config import TrainingConfig
from aicash.training.labels import NO_LABEL, direction_labels, horizon_log_returns

REQUIRED_COLUMNS: tuple[str, ...] = ("symbol", "timeframe", "ts", "close", *MODEL_FEATURES)
_YEAR = pd.Timedelta(days=365.25)


@dataclass(frozen=True)
class Samples:
    """Labelled windows over one or more series, in time order."""

    rows: np.ndarray  # (total rows, features) float32 raw indicator values of every series, stacked
    row_series: np.ndarray  # (total rows,) series id of each row
    end_row: np.ndarray  # (n,) row index of each sample's last window bar
    label: np.ndarray  # (n,) class 0/1/2
    horizon_return: np.ndarray  # (n,) log return from the decision bar to `horizon` bars later
    next_return: np.ndarray  # (n,) log return over the bar after the decision bar
    ts: np.ndarray  # (n,) datetime64[ns] decision time (the window's last bar)
    label_end_ts: np.ndarray  # (n,) datetime64[ns] time of the bar the label looks at
    series: np.ndarray  # (n,) series id
    series_keys: tuple[tuple[str, str], ...]  # (symbol, timeframe) per series id
    window: int
    horizon: int
    bars_per_year: float  # for annualising per-bar returns (estimated from the time stamps)
    features: tuple[str, ...] = MODEL_FEATURES

    def __len__(self) -> int:
        return len(self.end_row)

    def windows(self, idx: np.ndarray) -> np.ndarray:
        """Raw windows of the given samples: float32 (len(idx), window, features), oldest bar first."""
        offsets = np.arange(-self.window + 1, 1)
        return self.rows[self.end_row[np.asarray(idx)][:, None] + offsets]

    def window_chunks(self, idx: np.ndarray, size: int = 2048) -> list[np.ndarray]:
        return [self.windows(idx[i : i + size]) for i in range(0, len(idx), size)]

    def last_bar(self, idx: np.ndarray) -> pd.DataFrame:
        """The decision bar's raw indicators of the given samples (what the rule signal reads)."""
        return pd.DataFrame(self.rows[self.end_row[np.asarray(idx)]], columns=list(self.features))

    def with_labels(self, label: np.ndarray, horizon_return: np.ndarray) -> Samples:
        """The same windows with other targets (for leak checks)."""
        return replace(self, label=label, horizon_return=horizon_return)


def check_frame(frame: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the training frame lacks columns {missing}: pass candles with indicators "
            "(symbol, timeframe, ts, close and every MODEL_FEATURES column)"
        )


def build_samples(frame: pd.DataFrame, config: TrainingConfig) -> Samples:
    """Samples from candles-with-indicators of one or more series (columns: REQUIRED_COLUMNS)."""
    check_frame(frame)
    parts: list[dict[str, np.ndarray]] = []
    keys: list[tuple[str, str]] = []
    spans: list[tuple[int, pd.Timedelta]] = []
    offset = 0
    for series_id, ((symbol, timeframe), group) in enumerate(frame.groupby(["symbol", "timeframe"], sort=True)):
        group = group.sort_values("ts")
        ts = pd.to_datetime(group["ts"], utc=True)
        if ts.duplicated().any():
            raise ValueError(f"{symbol} {timeframe}: duplicate time stamps in the training frame")
        part = _series_samples(group, ts, config, offset, series_id)
        parts.append(part)
        keys.append((str(symbol), str(timeframe)))
        spans.append((len(group), ts.iloc[-1] - ts.iloc[0]))
        offset += len(group)
    if not parts:
        raise ValueError("the training frame is empty")
    joined = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    order = np.lexsort((joined["series"], joined["ts"]))
    return Samples(
        rows=joined["rows"],
        row_series=joined["row_series"],
        end_row=joined["end_row"][order],
        label=joined["label"][order],
        horizon_return=joined["horizon_return"][order],
        next_return=joined["next_return"][order],
        ts=joined["ts"][order],
        label_end_ts=joined["label_end_ts"][order],
        series=joined["series"][order],
        series_keys=tuple(keys),
        window=config.window_bars,
        horizon=config.horizon_bars,
        bars_per_year=_bars_per_year(spans),
    )


def _series_samples(
    group: pd.DataFrame, ts: pd.Series, config: TrainingConfig, offset: int, series_id: int
) -> dict[str, np.ndarray]:
    rows = group[list(MODEL_FEATURES)].to_numpy(dtype=np.float32)
    close = group["close"].to_numpy(dtype=np.float64)
    h, w = config.horizon_bars, config.window_bars
    ret = horizon_log_returns(close, h)
    labels = direction_labels(ret, group["volatility_20"].to_numpy(dtype=np.float64), h, config.flat_threshold)
    next_ret = horizon_log_returns(close, 1)

    bad = ~np.isfinite(rows).all(axis=1) | ~np.isfinite(close) | (close <= 0)
    bad_before = np.r_[0, np.cumsum(bad)]  # bad rows among the first k rows
    end = np.arange(len(rows))
    start = end - w + 1
    whole = (start >= 0) & (bad_before[end + 1] - bad_before[np.maximum(start, 0)] == 0)
    keep = whole & (labels != NO_LABEL) & np.isfinite(next_ret)
    stamps = ts.to_numpy(dtype="datetime64[ns]")
    label_end = np.full(len(rows), np.datetime64("NaT"), dtype="datetime64[ns]")
    label_end[: max(len(rows) - h, 0)] = stamps[h:]
    return {
        "rows": rows,
        "row_series": np.full(len(rows), series_id, dtype=np.int32),
        "end_row": (end + offset)[keep],
        "label": labels[keep],
        "horizon_return": ret[keep],
        "next_return": next_ret[keep],
        "ts": stamps[keep],
        "label_end_ts": label_end[keep],
        "series": np.full(int(keep.sum()), series_id, dtype=np.int32),
    }


def _bars_per_year(spans: list[tuple[int, pd.Timedelta]]) -> float:
    """Bars per calendar year, the median over series (market closures included, as the data has them)."""
    rates = [(n - 1) / (span / _YEAR) for n, span in spans if n > 1 and span > pd.Timedelta(0)]
    return float(np.median(rates)) if rates else 252.0
