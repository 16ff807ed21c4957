"""Fit the rule signal's component weights, from backtests on candles or from real trades, checked out of sample.

Both fits are a logistic regression on the components' votes (scikit-learn, L2, no scaling: every vote is in
[-1, 1], so the coefficients are directly comparable weights; the intercept absorbs the base rate and is not
part of the score). A component that predicts the wrong way gets a negative weight.

From candles the target is the direction of the next bar's return, and the check is walk-forward: the bars
after the first `train_fraction` of the time range are cut into `folds` consecutive windows, each predicted by
weights fitted only on the bars before it (their labels end at closes known when the window starts). The
returned weights are the last fold's, so the weights saved are exactly weights checked on the most recent data,
which they never saw; the figure compared on that window is the after-cost Sharpe of the rule signal
(`aicash.signals.backtest`), beside the default equal weights and the weights in force. The pooled windows
(`walk_forward`) show how the procedure does over time.

From trades the target is win or loss; each trade's votes are signed by its side (a SELL agrees with votes for
down), and the check is a time-ordered split: the first `train_fraction` of trades by entry time fit, the rest
test. The figure compared is the ROC AUC with which the signed composite score separates winners from losers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from aicash.db.engine import session_scope
from aicash.db.models import Trade
from aicash.indicators import INDICATOR_COLUMNS, with_indicators
from aicash.market.store import load_candles
from aicash.signals.backtest import add_forward_returns, bars_per_year, performance, positions
from aicash.signals.rule import COMPONENTS, DEFAULT_THRESHOLD, DEFAULT_WEIGHTS, component_votes, composite_score
from aicash.signals.weights import WeightsError, WeightsResult, latest_weights, normalize_weights

MIN_BARS = 500
MIN_TRADES = 40
MIN_PER_CLASS = 5


class NotEnoughDataError(WeightsError):
    """Too few bars or trades to fit and check weights."""


def fit_vote_weights(votes: np.ndarray, target: np.ndarray, c: float = 1.0) -> dict[str, float]:
    """Logistic-regression coefficients of `target` (0/1) on the vote columns, as normalized weights."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=1000)
    model.fit(votes, target)
    return normalize_weights(dict(zip(COMPONENTS, model.coef_[0], strict=True)))


def _baseline(engine: Engine) -> tuple[int | None, dict[str, float]]:
    latest = latest_weights(engine)
    return (None, dict(DEFAULT_WEIGHTS)) if latest is None else (latest.version, latest.weights)


def _period(frame: pd.DataFrame, column: str) -> dict[str, Any]:
    return {"start": frame[column].min().isoformat(), "end": frame[column].max().isoformat(), "rows": len(frame)}


# -- from backtests ----------------------------------------------------------------------------------------------
def _fold_edges(ts: pd.Series, train_fraction: float, folds: int) -> list[pd.Timestamp]:
    """Start times of each out-of-sample window, plus an end marker after the last bar."""
    times = np.sort(ts.unique())
    first = int(len(times) * train_fraction)
    cuts = [times[first + (len(times) - first) * k // folds] for k in range(folds)]
    return [pd.Timestamp(t) for t in cuts] + [pd.Timestamp(times[-1]) + pd.Timedelta(microseconds=1)]


def _prepare_bars(candles: pd.DataFrame, min_bars: int) -> pd.DataFrame:
    frame = with_indicators(add_forward_returns(candles)).dropna(subset=["fwd_return"])
    frame = frame.sort_values(["symbol", "ts"]).reset_index(drop=True) if "symbol" in frame else frame
    if len(frame) < min_bars:
        raise NotEnoughDataError(
            f"only {len(frame)} bars with indicators and a next bar (need at least {min_bars}): ingest more candles "
            "with `aicash data ingest`, or widen the symbols or dates"
        )
    return frame


def _walk_forward(
    frame: pd.DataFrame, votes: np.ndarray, edges: list[pd.Timestamp], min_bars: int
) -> tuple[list[tuple[np.ndarray, np.ndarray, dict[str, float]]], np.ndarray]:
    """(training mask, window mask, weights) per fold, and the positions-to-be mask of all windows."""
    folds = []
    returns = frame["fwd_return"].to_numpy()
    for start, end in zip(edges[:-1], edges[1:], strict=True):
        # labels of bars before `start` end at closes up to `start`'s, known when the window's first signal is made
        train = (frame["ts"] < start).to_numpy() & (returns != 0)
        window = ((frame["ts"] >= start) & (frame["ts"] < end)).to_numpy()
        if train.sum() < min_bars // 2 or window.sum() == 0:
            raise NotEnoughDataError(f"fold starting {start:%Y-%m-%d %H:%M} has too few bars: lower folds or add data")
        folds.append((train, window, fit_vote_weights(votes[train], (returns[train] > 0).astype(int))))
    return folds, (frame["ts"] >= edges[0]).to_numpy()


def optimize_on_candles(
    candles: pd.DataFrame,
    *,
    current: tuple[int | None, Mapping[str, float]] = (None, DEFAULT_WEIGHTS),
    threshold: float = DEFAULT_THRESHOLD,
    cost_bps: float = 1.0,
    train_fraction: float = 0.6,
    folds: int = 2,
    min_bars: int = MIN_BARS,
) -> WeightsResult:
    """Walk-forward fit of the weights on candles (symbol, ts, OHLCV); see the module docstring.

    Metrics: `in_sample` and `out_of_sample` compare the returned weights (the last fold's), the default equal
    weights and the weights in force on the last fold's training bars and on its window (data the returned
    weights never saw: the figure that decides whether they are saved); `walk_forward` pools every window, each
    predicted by the weights fitted before it, as an estimate of how the procedure does over time.
    """
    if not 0.1 <= train_fraction <= 0.9 or folds < 1:
        raise WeightsError("train_fraction must be within 0.1..0.9 and folds at least 1")
    frame = _prepare_bars(candles, min_bars)
    per_year = bars_per_year(frame)
    votes = component_votes(frame)[list(COMPONENTS)].to_numpy()
    fits, pooled = _walk_forward(frame, votes, _fold_edges(frame["ts"], train_fraction, folds), min_bars)
    others = {"default": dict(DEFAULT_WEIGHTS), "current": dict(current[1])}

    def perf(mask: np.ndarray, weights: Mapping[str, float]) -> dict[str, Any]:
        part = frame[mask]
        return performance(part, positions(part, weights, threshold), cost_bps=cost_bps, periods_per_year=per_year)

    walk_positions = np.zeros(len(frame), dtype=int)
    fold_detail = []
    for _, window, w in fits:
        walk_positions[window] = positions(frame[window], w, threshold)
        sharpe = {f"{n}_sharpe": perf(window, v)["sharpe"] for n, v in {"optimized": w, **others}.items()}
        fold_detail.append({"period": _period(frame[window], "ts"), "weights": w, **sharpe})
    train, window, weights = fits[-1]
    named = {"optimized": weights, **others}
    out_of_sample = {n: perf(window, v) for n, v in named.items()}
    walk_forward = {n: perf(pooled, v) for n, v in others.items()}
    walk_forward["optimized"] = performance(frame[pooled], walk_positions[pooled], cost_bps=cost_bps,
                                            periods_per_year=per_year)
    metrics = {
        "method": "logistic regression on component votes, walk-forward",
        "symbols": sorted(frame["symbol"].unique().tolist()) if "symbol" in frame else [],
        "timeframe": str(frame["timeframe"].iloc[0]) if "timeframe" in frame else None,
        "threshold": threshold, "cost_bps": cost_bps, "train_fraction": train_fraction, "folds": folds,
        "bars_per_year": round(per_year, 1),
        "train_period": _period(frame[train], "ts"), "out_of_sample_period": _period(frame[window], "ts"),
        "in_sample": {n: perf(train, v) for n, v in named.items()}, "out_of_sample": out_of_sample,
        "walk_forward": walk_forward, "fold_detail": fold_detail, "baseline_weights": dict(current[1]),
    }
    return WeightsResult(
        source="backtest", weights=weights, objective="sharpe", oos_score=out_of_sample["optimized"]["sharpe"],
        baseline_oos_score=out_of_sample["current"]["sharpe"], baseline_version=current[0], metrics=metrics,
    )


def optimize_from_backtest(
    engine: Engine,
    symbols: Sequence[str],
    timeframe: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    cost_bps: float = 1.0,
    train_fraction: float = 0.6,
    folds: int = 2,
    min_bars: int = MIN_BARS,
) -> WeightsResult:
    """Fit weights on the stored candles of `symbols` at `timeframe`, compared with the weights in force."""
    candles = load_candles(engine, list(symbols), timeframe, start, end)
    missing = sorted(set(symbols) - set(candles["symbol"].unique()))
    if missing:
        raise NotEnoughDataError(
            f"no {timeframe} candles stored for {', '.join(missing)}: ingest them with `aicash data ingest`"
        )
    return optimize_on_candles(candles, current=_baseline(engine), threshold=threshold, cost_bps=cost_bps,
                               train_fraction=train_fraction, folds=folds, min_bars=min_bars)


# -- from trades -------------------------------------------------------------------------------------------------
def load_closed_trades(engine: Engine) -> pd.DataFrame:
    """Closed trades that carry entry features: side, entry_time, outcome (pnl, else from prices) and indicators."""
    with session_scope(engine) as session:
        rows = [
            (t.side, t.entry_time, t.pnl, t.entry_price, t.exit_price, t.quantity, t.entry_features or {})
            for t in session.scalars(select(Trade).order_by(Trade.entry_time, Trade.id))
        ]
    frame = pd.DataFrame(rows, columns=["side", "entry_time", "pnl", "entry_price", "exit_price", "quantity",
                                        "features"])
    sign = np.where(frame["side"] == "BUY", 1.0, -1.0)
    from_prices = (frame["exit_price"].astype(float) - frame["entry_price"].astype(float)) * sign * frame["quantity"]
    frame["outcome"] = frame["pnl"].astype(float).fillna(from_prices)
    frame["sign"] = sign
    indicators = pd.DataFrame(list(frame["features"]), index=frame.index).reindex(columns=list(INDICATOR_COLUMNS))
    has_features = indicators.notna().any(axis=1)
    frame = pd.concat([frame.drop(columns="features"), indicators.astype(float)], axis=1)
    return frame[has_features & frame["outcome"].notna()].reset_index(drop=True)


def _signed_scores(trades: pd.DataFrame, weights: Mapping[str, float]) -> np.ndarray:
    return composite_score(trades, weights).to_numpy() * trades["sign"].to_numpy()


def _trade_metrics(trades: pd.DataFrame, weights: Mapping[str, float], threshold: float) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    score, won = _signed_scores(trades, weights), trades["outcome"].to_numpy() > 0
    agree = score > threshold
    return {
        "auc": float(roc_auc_score(won, score)),
        "win_rate": float(won.mean()),
        "agreeing_trades": int(agree.sum()),
        "win_rate_when_agreeing": float(won[agree].mean()) if agree.any() else None,
        "trades": len(trades),
    }


def optimize_on_trades(
    trades: pd.DataFrame,
    *,
    current: tuple[int | None, Mapping[str, float]] = (None, DEFAULT_WEIGHTS),
    threshold: float = DEFAULT_THRESHOLD,
    train_fraction: float = 0.7,
    min_trades: int = MIN_TRADES,
) -> WeightsResult:
    """Fit weights that separate winning from losing trades (`load_closed_trades` rows, time-ordered)."""
    usable = trades[trades["outcome"] != 0].sort_values("entry_time").reset_index(drop=True)
    if len(usable) < min_trades:
        raise NotEnoughDataError(
            f"only {len(usable)} closed trades with entry features and a non-zero outcome (need at least "
            f"{min_trades}): import more with `aicash db import-trades FILE` (columns pnl or exit_price, and "
            "indicator columns such as rsi_value)"
        )
    cut = int(len(usable) * train_fraction)
    train, test = usable.iloc[:cut], usable.iloc[cut:]
    for name, part in (("training", train), ("test", test)):
        wins = int((part["outcome"] > 0).sum())
        if min(wins, len(part) - wins) < MIN_PER_CLASS:
            raise NotEnoughDataError(
                f"the {name} part ({len(part)} trades) has {wins} winners and {len(part) - wins} losers; each needs "
                f"at least {MIN_PER_CLASS}: import more trades"
            )
    signed_votes = component_votes(train)[list(COMPONENTS)].to_numpy() * train["sign"].to_numpy()[:, None]
    weights = fit_vote_weights(signed_votes, (train["outcome"] > 0).astype(int).to_numpy())
    named = {"optimized": weights, "default": dict(DEFAULT_WEIGHTS), "current": dict(current[1])}
    in_sample = {n: _trade_metrics(train, w, threshold) for n, w in named.items()}
    out_of_sample = {n: _trade_metrics(test, w, threshold) for n, w in named.items()}
    metrics = {
        "method": "logistic regression on side-signed component votes, time-ordered split",
        "threshold": threshold, "train_fraction": train_fraction,
        "train_period": _period(train, "entry_time"), "out_of_sample_period": _period(test, "entry_time"),
        "skipped_breakeven": int(len(trades) - len(usable)),
        "in_sample": in_sample, "out_of_sample": out_of_sample, "baseline_weights": dict(current[1]),
    }
    return WeightsResult(
        source="trades", weights=weights, objective="auc", oos_score=out_of_sample["optimized"]["auc"],
        baseline_oos_score=out_of_sample["current"]["auc"], baseline_version=current[0], metrics=metrics,
    )


def optimize_from_trades(
    engine: Engine, *, threshold: float = DEFAULT_THRESHOLD, train_fraction: float = 0.7, min_trades: int = MIN_TRADES
) -> WeightsResult:
    """Fit weights on the closed trades in the `trades` table, compared with the weights in force."""
    return optimize_on_trades(load_closed_trades(engine), current=_baseline(engine), threshold=threshold,
                              train_fraction=train_fraction, min_trades=min_trades)
