"""`aicash data`: ingest, generate and list market candles."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from aicash.cli.common import bad_input_exits, console, fail
from aicash.cli.db import ready_engine
from aicash.market import samples
from aicash.market.candles import TIMEFRAMES, BadSymbolError, check_timeframe
from aicash.market.ingest import IngestResult, ingest_file, ingest_frame
from aicash.market.store import summarize
from aicash.market.synth import synth_universe
from aicash.market.validation import InputFileError

app = typer.Typer(no_args_is_help=True)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=True,
    )


def report(result: IngestResult) -> None:
    console.print(
        f"{result.symbol} {result.timeframe}: {result.rows} bars ({result.new} new, {result.updated} updated), "
        f"{result.first:%Y-%m-%d %H:%M} .. {result.last:%Y-%m-%d %H:%M} UTC"
    )


@app.command("ingest")
def ingest(
    ctx: typer.Context,
    path: Path | None = typer.Argument(None, help="CSV or Parquet with timestamp, open, high, low, close, volume."),
    symbol: str | None = typer.Option(None, "--symbol", help="Symbol of the file's candles, e.g. EURUSD."),
    timeframe: str = typer.Option("1h", "--timeframe", help=f"Bar length: {', '.join(TIMEFRAMES)}."),
    sample: str | None = typer.Option(None, "--sample", help=f"Packaged sample: {', '.join(samples.SAMPLES)}."),
) -> None:
    """Load OHLCV candles; the whole file is validated first and written in one transaction (upsert)."""
    if (path is None) == (sample is None):
        fail("give either PATH (with --symbol) or --sample NAME")
    with bad_input_exits(InputFileError, BadSymbolError, samples.UnknownSampleError):
        if sample is not None:
            spec = samples.get_sample(sample)
            candles, symbol, timeframe = samples.load_sample(sample), spec.symbol, spec.timeframe
            engine = ready_engine(ctx)
            with progress_bar() as bar:
                task = bar.add_task(f"ingest {sample}", total=len(candles))
                result = ingest_frame(engine, candles, symbol, timeframe, lambda n: bar.advance(task, n))
        else:
            if not symbol:
                fail("--symbol is required with a PATH, e.g. --symbol EURUSD")
            check_timeframe(timeframe)
            engine = ready_engine(ctx)
            with progress_bar() as bar:
                task = bar.add_task(f"ingest {path}", total=None)
                result = ingest_file(engine, path, symbol, timeframe, lambda n: bar.advance(task, n))
    report(result)


@app.command("synth")
def synth(
    ctx: typer.Context,
    symbols: int = typer.Option(1, "--symbols", min=1, max=1000, help="Number of synthetic symbols."),
    bars: int = typer.Option(10_000, "--bars", min=100, max=50_000_000, help="Bars per symbol."),
    seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same candles."),
    timeframe: str = typer.Option("1h", "--timeframe", help="Bar length."),
    out: Path | None = typer.Option(None, "--out", help="Also write one Parquet file per symbol here."),
) -> None:
    """Generate realistic synthetic candles (GBM with regime switches) and ingest them."""
    with bad_input_exits(BadSymbolError):
        check_timeframe(timeframe)
    engine = ready_engine(ctx)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    with progress_bar() as bar:
        task = bar.add_task("synth", total=symbols * bars)
        for name, candles in synth_universe(symbols, bars, seed, TIMEFRAMES[timeframe]):
            result = ingest_frame(engine, candles, name, timeframe, lambda n: bar.advance(task, n))
            if out is not None:
                candles.rename(columns={"ts": "timestamp"}).to_parquet(out / f"{name}-{timeframe}.parquet")
            report(result)


@app.command("list")
def list_series(ctx: typer.Context) -> None:
    """Show symbols, timeframes, bar counts and date ranges."""
    rows = summarize(ready_engine(ctx))
    table = Table("symbol", "timeframe", "bars", "first (UTC)", "last (UTC)", title="market candles")
    for row in rows:
        table.add_row(
            row.symbol, row.timeframe, f"{row.bars:,}",
            f"{pd.Timestamp(row.first):%Y-%m-%d %H:%M}", f"{pd.Timestamp(row.last):%Y-%m-%d %H:%M}",
        )
    console.print(table if rows else "no candles yet: try `aicash data ingest --sample eurusd-1h`")


@app.command("indicators")
def indicators(
    ctx: typer.Context,
    symbol: str = typer.Argument(..., help="Symbol to compute indicators for, e.g. EURUSD."),
    timeframe: str = typer.Option("1h", "--timeframe", help="Bar length."),
) -> None:
    """Compute the indicator set over a symbol's candles and print a summary table."""
    from aicash.indicators import INDICATOR_COLUMNS, with_indicators
    from aicash.market.candles import normalize_symbol
    from aicash.market.store import load_candles

    with bad_input_exits(BadSymbolError):
        symbol, timeframe = normalize_symbol(symbol), check_timeframe(timeframe)
    candles = load_candles(ready_engine(ctx), [symbol], timeframe)
    if candles.empty:
        fail(f"no {timeframe} candles for {symbol}: ingest some first (see `aicash data list`)")
    frame = with_indicators(candles)
    last = frame.iloc[-1]
    table = Table(
        "indicator", "latest", "mean", "min", "max",
        title=f"{symbol} {timeframe}: {len(frame):,} bars with indicators, latest {last.ts:%Y-%m-%d %H:%M} UTC",
    )
    for col in INDICATOR_COLUMNS:
        s = frame[col]
        table.add_row(col, f"{last[col]:.6g}", f"{s.mean():.6g}", f"{s.min():.6g}", f"{s.max():.6g}")
    console.print(table)
