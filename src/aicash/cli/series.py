"""The stored series a command works on: `--timeframe` left out means the one timeframe a symbol has candles in,
and `pipeline run` checks, before anything starts, that its series exist and are long enough to train on."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aicash.cli.common import bad_input_exits, fail

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from aicash.training.config import TrainingConfig

DEFAULT_TIMEFRAME = "1h"  # where a symbol has no candles yet (a cluster's ingestion may bring them)


def stored_timeframes(engine: Engine, symbol: str) -> dict[str, int]:
    """The timeframes `symbol` has candles in, with their bar counts."""
    from sqlalchemy import func, select

    from aicash.db.models import MarketCandle

    t = MarketCandle.__table__
    query = (select(t.c.timeframe, func.count()).where(t.c.symbol == symbol)
             .group_by(t.c.timeframe).order_by(t.c.timeframe))
    with engine.connect() as conn:
        return {timeframe: int(count) for timeframe, count in conn.execute(query)}


def resolve_timeframe(engine: Engine, symbols: list[str], timeframe: str | None) -> str:
    """`timeframe` checked, or, left out, the one timeframe the symbols have candles in (exit 2 listing them when
    there are several; DEFAULT_TIMEFRAME when they have none)."""
    from aicash.market.candles import BadSymbolError, check_timeframe

    if timeframe is not None:
        with bad_input_exits(BadSymbolError):
            return check_timeframe(timeframe)
    found = {symbol: sorted(stored_timeframes(engine, symbol)) for symbol in symbols}
    every = sorted({tf for tfs in found.values() for tf in tfs})
    if not every:
        return DEFAULT_TIMEFRAME
    if len(every) > 1:
        listed = "; ".join(f"{symbol}: {', '.join(tfs) or 'none'}" for symbol, tfs in found.items())
        fail(f"more than one timeframe stored ({listed}): pass --timeframe, e.g. --timeframe {every[0]}")
    return every[0]


def minimum_bars(config: TrainingConfig) -> int:
    """The fewest bars of one series the walk-forward evaluation can run on with `config`: the indicators' warm-up,
    one window and the label horizon, then enough samples for the first fold's fit and validation sets (purged by
    the horizon) and one sample per test block."""
    from math import ceil

    from aicash.indicators import WARMUP_BARS

    horizon, folds, first = config.horizon_bars, config.n_folds, config.first_test_fraction
    samples = max(ceil(folds / (1.0 - first)) + 1, ceil((2 * horizon + 3) / first) + 1)
    return samples + (WARMUP_BARS - 1) + (config.window_bars - 1) + horizon


def check_series(engine: Engine, symbols: list[str], timeframe: str, config: TrainingConfig | None) -> None:
    """Exit 2 with the fix unless every series has candles and, for training (`config`), enough of them."""
    needed = minimum_bars(config) if config is not None else 0
    for symbol in symbols:
        stored = stored_timeframes(engine, symbol)
        bars = stored.get(timeframe, 0)
        if bars == 0:
            other = f" (it has {', '.join(stored)}: pass --timeframe)" if stored else ""
            fail(f"no {timeframe} candles for {symbol}{other}: ingest them first, e.g. `aicash data ingest "
                 f"--from URI` or `aicash data ingest PATH --symbol {symbol} --timeframe {timeframe}`; "
                 "`aicash data list` shows what is stored")
        if config is not None and bars < needed:
            fail(f"{symbol} {timeframe} has {bars:,} bars; training needs at least {needed:,} (indicator warm-up, "
                 f"a {config.window_bars}-bar window, the {config.horizon_bars}-bar horizon and {config.n_folds} "
                 "walk-forward folds): ingest more history, or pass --config with a smaller n_folds or window_bars")
