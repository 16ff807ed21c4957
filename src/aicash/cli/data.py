"""`aicash data`: ingest, generate and list market candles."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from aicash.cli.common import bad_input_exits, console, fail, settings_of
from aicash.cli.db import ready_engine
from aicash.market import samples
from aicash.market.timeframes import TIMEFRAME_NAMES

if TYPE_CHECKING:  # pandas and the market modules load with the commands that use them (`data list` stays fast)
    from aicash.market.ingest import IngestResult
    from aicash.market.sources import SourceRun

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
    timeframe: str | None = typer.Option(
        None, "--timeframe", help=f"Bar length: {', '.join(TIMEFRAME_NAMES)} (PATH: 1h)."),
    sample: str | None = typer.Option(None, "--sample", help=f"Packaged sample: {', '.join(samples.SAMPLES)}."),
    source: str | None = typer.Option(
        None, "--from", metavar="URI", help="Read new bars from a source: s3://bucket/prefix/ (CSV or Parquet files) "
        "or a database URL such as postgresql://user@host/trading (with --table or --query).",
    ),
    table: str | None = typer.Option(None, "--table", help="Source table (database sources), e.g. candles."),
    query: str | None = typer.Option(None, "--query", help="Source SELECT (database sources), instead of --table."),
    column: list[str] | None = typer.Option(
        None, "--column", metavar="TARGET=SOURCE", help="Map a candle column to the source's, e.g. --column "
        "timestamp=time --column close=last_price (timestamp, open, high, low, close, volume, symbol, timeframe).",
    ),
) -> None:
    """Load OHLCV candles; the whole input is validated first and written in one transaction (upsert).

    With --from, only the bars after the last stored one of each series are read and added; a second run adds 0.
    """
    if sum(x is not None for x in (path, sample, source)) != 1:
        fail("give one of PATH (with --symbol), --sample NAME or --from URI")
    if source is not None:
        ingest_from(ctx, source, table, query, column or [], symbol, timeframe)
        return
    if table is not None or query is not None or column:
        fail("--table, --query and --column go with --from URI")
    from aicash.market.candles import BadSymbolError, check_timeframe
    from aicash.market.ingest import ingest_file, ingest_frame
    from aicash.market.validation import InputFileError

    timeframe = timeframe or "1h"
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


def ingest_from(
    ctx: typer.Context, uri: str, table: str | None, query: str | None, columns: list[str], symbol: str | None,
    timeframe: str | None,
) -> None:
    """`ingest --from URI`: options checked first, then the incremental read, validation and one transaction."""
    from aicash.market.candles import BadSymbolError
    from aicash.market.sources import SourceError, SourceFaultsError, parse_source, run_source
    from aicash.market.validation import InputFileError

    with bad_input_exits(SourceError, SourceFaultsError, InputFileError, BadSymbolError):
        spec = parse_source(uri, table=table, query=query, columns=columns, symbol=symbol, timeframe=timeframe)
        engine = ready_engine(ctx)
        with progress_bar() as bar:

            def track(description: str, total: int | None) -> Callable[[int], None]:
                task = bar.add_task(description, total=total)
                return lambda n: bar.advance(task, n)

            run = run_source(spec, engine, settings_of(ctx).s3_endpoint_url, track)
    report_run(run)


def report_run(run: SourceRun) -> None:
    """One line per series that got bars, then the run's totals (what a second run shows as 0 bars added)."""
    for symbol, timeframe in sorted(run.added):
        ts = run.added[symbol, timeframe]["ts"]
        console.print(f"{symbol} {timeframe}: {len(ts)} new bars, {ts.iloc[0]:%Y-%m-%d %H:%M} .. "
                      f"{ts.iloc[-1]:%Y-%m-%d %H:%M} UTC")
    files = f"{run.objects_read} file(s) read, {run.objects_skipped} already ingested (same ETag); " if (
        run.objects_read or run.objects_skipped) else ""
    console.print(f"{run.source}: {files}{run.rows_read} rows read, {run.rows_added} bars added",
                  markup=False, highlight=False, soft_wrap=True)


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
    from aicash.market.candles import TIMEFRAMES, BadSymbolError, check_timeframe
    from aicash.market.ingest import ingest_frame
    from aicash.market.synth import synth_universe

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
    from aicash.market.summary import summarize

    rows = summarize(ready_engine(ctx))
    table = Table("symbol", "timeframe", "bars", "first (UTC)", "last (UTC)", title="market candles")
    for row in rows:
        table.add_row(
            row.symbol, row.timeframe, f"{row.bars:,}",
            f"{row.first:%Y-%m-%d %H:%M}", f"{row.last:%Y-%m-%d %H:%M}",
        )
    console.print(table if rows else "no candles yet: try `aicash data ingest --sample eurusd-1h`")


@app.command("indicators")
def indicators(
    ctx: typer.Context,
    symbol: str = typer.Argument(..., help="Symbol to compute indicators for, e.g. EURUSD."),
    timeframe: str | None = typer.Option(None, "--timeframe", help="Bar length; default: the one timeframe the "
                                         "symbol has candles in."),
) -> None:
    """Compute the indicator set over a symbol's candles and print a summary table."""
    from aicash.cli.series import resolve_timeframe
    from aicash.indicators import INDICATOR_COLUMNS, with_indicators
    from aicash.market.candles import BadSymbolError, normalize_symbol
    from aicash.market.store import load_candles

    with bad_input_exits(BadSymbolError):
        symbol = normalize_symbol(symbol)
    engine = ready_engine(ctx)
    timeframe = resolve_timeframe(engine, [symbol], timeframe)
    candles = load_candles(engine, [symbol], timeframe)
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
