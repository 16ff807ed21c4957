"""`aicash pipeline`: run the KFP pipelines here, compile them, submit and schedule them on a KFP cluster."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from aicash.cli.common import bad_input_exits, console, err_console, fail, settings_of
from aicash.cli.db import ready_engine
from aicash.market.candles import BadSymbolError, check_timeframe, normalize_symbol

if TYPE_CHECKING:
    from sqlalchemy import Engine

app = typer.Typer(no_args_is_help=True)

IMAGE_HELP = ("Platform image the components run in (cluster only), e.g. registry.example.com/aicash-platform:1.4.2; "
              "default KFP_IMAGE.")
TIMEFRAME_HELP = ("Bar length, e.g. 1h; default: the one timeframe the symbols have candles in (with several, "
                  "the error lists them; with none, 1h).")
PIPELINE_HELP = "Pipeline: lstm-training, model-search or signal-weights."
TRIALS_HELP = "model-search only: how many trials (configurations) to run; default 16."
SPACE_HELP = ("model-search only: the search space, a YAML file like pipelines/search_space.yaml (the default): "
              "families, their parameters' choices or ranges, and the sampler (random or grid).")
SEED_HELP = "model-search only: the random sampler's seed (the same seed, space and trials give the same trials)."
USE_TRADES_HELP = ("signal-weights only: also fit the weights on the closed trades in `trades` (import them with "
                   "`aicash db import-trades FILE`) after the backtest fit.")


def _runner():  # type: ignore[no-untyped-def]
    """`pipelines.runner`, imported when a command needs it (KFP takes a second to import)."""
    from pipelines import runner

    return runner


def _arguments(
    name: str, symbols: list[str], timeframe: str, config_json: str | None, use_trades: bool = False,
    search: Search | None = None,
) -> dict[str, Any]:
    """The pipeline's parameters from the command line, validated (an unknown pipeline exits 2 too); `use_trades`
    is passed only when set; model-search gets its space (checked, as one line of JSON), trials and seed."""
    runner = _runner()
    with bad_input_exits(runner.UnknownPipelineError):
        runner.pipeline_fn(name)
    with bad_input_exits(BadSymbolError):
        args: dict[str, Any] = {
            "symbols": [normalize_symbol(s) for s in symbols], "timeframe": check_timeframe(timeframe)
        }
    if config_json:
        from aicash.training.config import TrainingConfig

        try:
            TrainingConfig.model_validate_json(config_json)
        except ValueError as exc:
            fail(f"--config is not a valid training config: {exc}")
        if name not in TRAINING_PIPELINES:
            fail("--config applies to the lstm-training and model-search pipelines only")
        args["config_json"] = config_json
    if use_trades:
        if name != "signal-weights":
            fail("--use-trades applies to the signal-weights pipeline only")
        args["use_trades"] = True
    search = search or Search()
    if name == SEARCH_PIPELINE:
        args |= search.arguments(config_json)
    elif search.given():
        fail(f"{search.given()} applies to the model-search pipeline only")
    return args


SEARCH_PIPELINE = "model-search"
TRAINING_PIPELINES = ("lstm-training", SEARCH_PIPELINE)


@dataclass(frozen=True)
class Search:
    """model-search's options as given (None: not given, the default applies)."""

    trials: int | None = None
    space: Path | None = None
    seed: int | None = None

    def given(self) -> str:
        """The options given, as the command line names them ("" for none)."""
        named = (("--trials", self.trials), ("--space", self.space), ("--seed", self.seed))
        return ", ".join(option for option, value in named if value is not None)

    def arguments(self, config_json: str | None) -> dict[str, Any]:
        """The pipeline's space, trials and seed, after checking that they make a search (exit 2 naming the field
        and the fix otherwise: nothing has started)."""
        from aicash.training.search_space import SearchSpaceError, plan_from_text, space_json
        from pipelines.model_search import DEFAULT_SEED, DEFAULT_TRIALS, SPACE_FILE

        path = self.space or SPACE_FILE
        if not path.is_file():
            fail(f"--space {path}: no such file; write one like {SPACE_FILE} (the default space)")
        trials = DEFAULT_TRIALS if self.trials is None else self.trials
        seed = DEFAULT_SEED if self.seed is None else self.seed
        try:
            space = space_json(path)
            plan_from_text(space, trials, seed, config_json or "{}")
        except SearchSpaceError as exc:
            message = str(exc)
            fail(f"--space {path}: {message.removeprefix('space: ')}" if message.startswith("space: ") else message)
        return {"space": space, "trials": trials, "seed": seed}




@app.command("run")
def run(
    ctx: typer.Context,
    name: str = typer.Argument(..., help=PIPELINE_HELP),
    symbols: list[str] = typer.Option(["EURUSD"], "--symbol", help="Symbol to train on; repeat for several."),
    timeframe: str | None = typer.Option(None, "--timeframe", help=TIMEFRAME_HELP),
    config: str | None = typer.Option(None, "--config", help='Training config as JSON, e.g. {"max_epochs": 5} '
                                      "(model-search: the base config, its data settings shared by every trial)."),
    use_trades: bool = typer.Option(False, "--use-trades", help=USE_TRADES_HELP),
    trials: int | None = typer.Option(None, "--trials", help=TRIALS_HELP),
    space: Path | None = typer.Option(None, "--space", help=SPACE_HELP),
    seed: int | None = typer.Option(None, "--seed", help=SEED_HELP),
    verbose: bool = typer.Option(False, "--verbose", help="Stream KFP's full log (every task's output) as it comes, "
                                 "instead of one line per task."),
) -> None:
    """Run a pipeline here with KFP's local runner (SubprocessRunner): one line per task as it runs, KFP's full log
    in a file under AICASH_HOME (--verbose streams it), then the model against the baselines and the gate's decision
    (model-search: a line per trial with its family and Sharpe, then the winner, the trials, DSR and PBO). The series
    and the search's space and trials are checked first: bad ones exit 2 before any task starts."""
    from aicash.cli.run_view import RunView, print_summary
    from aicash.cli.series import check_series
    from aicash.registry import get_model
    from aicash.training.config import TrainingConfig
    from aicash.training.runs import start_run
    from pipelines.launch import ChildProcess, RunFailedError, pipeline_root, run_here

    settings = settings_of(ctx)
    engine = ready_engine(ctx)
    arguments = _arguments(name, symbols, _timeframe(engine, symbols, timeframe), config, use_trades,
                           Search(trials, space, seed))
    training = TrainingConfig.model_validate_json(config or "{}") if name in TRAINING_PIPELINES else None
    check_series(engine, arguments["symbols"], arguments["timeframe"], training)
    run_id = start_run(engine, name, arguments)
    log_path = pipeline_root(settings) / "logs" / f"run-{run_id}.log"
    shown = {**arguments, "space": str(space or "pipelines/search_space.yaml")} if "space" in arguments else arguments
    console.print(f"[bold]running {name}[/] locally (training run {run_id}) with {json.dumps(shown)}",
                  highlight=False, soft_wrap=True)
    console.print(f"KFP's log: {log_path}", highlight=False, soft_wrap=True)
    view = None if verbose else RunView(console)
    execute = ChildProcess(settings, echo=verbose, on_line=None if view is None else view.feed)
    try:
        if view is None:
            done = run_here(engine, settings, name, arguments, run_id=run_id, execute=execute)
        else:
            with view:
                done = run_here(engine, settings, name, arguments, run_id=run_id, execute=execute)
    except RunFailedError as exc:
        fail(f"pipeline {name} failed (training run {run_id} recorded as failed): {exc.cause}", code=1)
    version = done.model_version
    console.print(f"[bold green]{name} succeeded[/] (training run {run_id})", highlight=False)
    if version is None:
        console.print(f"full log: {log_path}", highlight=False, soft_wrap=True)
        return
    print_summary(console, get_model(engine, version))


def _timeframe(engine: Engine, symbols: list[str], timeframe: str | None) -> str:
    """--timeframe, or the one timeframe the (valid) symbols have candles in."""
    from aicash.cli.series import resolve_timeframe

    with bad_input_exits(BadSymbolError):
        names = [normalize_symbol(s) for s in symbols]
    return resolve_timeframe(engine, names, timeframe)


@app.command("compile")
def compile_(
    ctx: typer.Context,
    out: Path = typer.Option(None, "--out", help="Folder for the IR YAML files (default: ./pipelines/compiled)."),
    image: str | None = typer.Option(None, "--image", help=IMAGE_HELP),
) -> None:
    """Write the IR YAML of every pipeline (default: under pipelines/compiled/ of the working folder)."""
    runner = _runner()
    settings = settings_of(ctx)
    for path in runner.compile_all(out or runner.COMPILED_DIR, image or settings.kfp_image,
                                   settings.training_timeout_seconds):
        console.print(f"compiled {path}")


@app.command("submit")
def submit(
    ctx: typer.Context,
    name: str = typer.Argument(..., help=PIPELINE_HELP),
    host: str = typer.Option(..., "--host", help="KFP API endpoint, e.g. http://127.0.0.1:8888."),
    symbols: list[str] = typer.Option(["EURUSD"], "--symbol", help="Symbol; repeat for several."),
    timeframe: str | None = typer.Option(None, "--timeframe", help=TIMEFRAME_HELP),
    config: str | None = typer.Option(None, "--config", help="Training config as JSON."),
    image: str | None = typer.Option(None, "--image", help=IMAGE_HELP),
    use_trades: bool = typer.Option(False, "--use-trades", help=USE_TRADES_HELP),
    trials: int | None = typer.Option(None, "--trials", help=TRIALS_HELP),
    space: Path | None = typer.Option(None, "--space", help=SPACE_HELP),
    seed: int | None = typer.Option(None, "--seed", help=SEED_HELP),
) -> None:
    """Create a run on a Kubeflow Pipelines cluster (caching on); it is recorded in `training_runs` as submitted."""
    from pipelines.launch import KfpUnavailableError
    from pipelines.launch import submit as submit_run

    engine = ready_engine(ctx)  # before submitting: a run the database cannot record is not started
    arguments = _arguments(name, symbols, _timeframe(engine, symbols, timeframe), config, use_trades,
                           Search(trials, space, seed))
    try:
        run = submit_run(engine, settings_of(ctx), name, arguments, host=host, image=image)
    except KfpUnavailableError as exc:
        fail(str(exc), code=1)
    console.print(f"submitted {name}: run {run.kfp_id} on {host} (training run {run.run_id})")


@app.command("schedule")
def schedule(
    ctx: typer.Context,
    name: str = typer.Argument(..., help=PIPELINE_HELP),
    cron: str | None = typer.Option(None, "--cron", help="KFP cron expression with seconds, e.g. '0 0 3 * * *' "
                                                         "(a 5-field one runs at second 0); required but with --off."),
    host: str = typer.Option(..., "--host", help="KFP API endpoint."),
    symbols: list[str] = typer.Option(["EURUSD"], "--symbol"),
    timeframe: str | None = typer.Option(None, "--timeframe", help=TIMEFRAME_HELP),
    image: str | None = typer.Option(None, "--image", help=IMAGE_HELP),
    use_trades: bool = typer.Option(False, "--use-trades", help=USE_TRADES_HELP),
    reconcile: bool = typer.Option(False, "--reconcile", help="Idempotent: keep the recurring run --name if it "
                                   "matches, else create it and delete the stale ones (what `pulumi up` runs)."),
    display_name: str | None = typer.Option(
        None, "--name", help="With --reconcile: the recurring run's name on KFP, kept unique (default NAME-schedule, "
        "the name a plain `schedule` gives)."),
    off: bool = typer.Option(False, "--off", help="With --reconcile: delete the recurring run --name, if any."),
    trials: int | None = typer.Option(None, "--trials", help=TRIALS_HELP),
    space: Path | None = typer.Option(None, "--space", help=SPACE_HELP),
    seed: int | None = typer.Option(None, "--seed", help=SEED_HELP),
) -> None:
    """Create a recurring run on a Kubeflow Pipelines cluster; it is recorded in `training_runs` as scheduled.
    With --reconcile, make KFP hold exactly the declared one (or none, with --off)."""
    from pipelines.launch import KfpUnavailableError
    from pipelines.launch import schedule as schedule_run

    if (off or display_name) and not reconcile:
        fail("--off and --name go with --reconcile")
    if cron is None and not off:
        fail("--cron is required, e.g. --cron '0 0 3 * * *'")
    if cron is not None:
        fields = cron.split()
        if len(fields) not in (5, 6):
            fail(f"--cron {cron!r} needs 6 fields (seconds minutes hours day month weekday), e.g. '0 0 3 * * *'")
        if len(fields) == 5:
            cron = "0 " + cron  # a standard 5-field cron, run at second 0
    engine = ready_engine(ctx)
    arguments = _arguments(name, symbols, _timeframe(engine, symbols, timeframe), None, use_trades,
                           Search(trials, space, seed))
    if reconcile:
        _reconcile(ctx, engine, name, arguments, host, display_name or f"{name}-schedule", None if off else cron,
                   image)
        return
    assert cron is not None  # noqa: S101 - checked above
    try:
        run = schedule_run(engine, settings_of(ctx), name, arguments, host=host, cron=cron, image=image)
    except KfpUnavailableError as exc:
        fail(str(exc), code=1)
    console.print(f"scheduled {name} ({cron}): recurring run {run.kfp_id} on {host} (training run {run.run_id})")


def _reconcile(ctx: typer.Context, engine: Engine, name: str, arguments: dict[str, Any], host: str,
               display_name: str, cron: str | None, image: str | None) -> None:  # fmt: skip
    """`schedule --reconcile`: one line saying what changed on KFP (exit 1 when KFP refuses or is unreachable)."""
    from pipelines.launch import KfpUnavailableError, reconcile_schedule

    try:
        done = reconcile_schedule(engine, settings_of(ctx), name, arguments, host=host,
                                  display_name=display_name, cron=cron, image=image)
    except KfpUnavailableError as exc:
        fail(str(exc), code=1)
    deleted = ", ".join(done.deleted)
    if cron is None:
        console.print(f"recurring run {display_name} on {host}: "
                      + (f"deleted {deleted}" if deleted else "absent, nothing to delete"),
                      highlight=False, soft_wrap=True)
        return
    row = f" (training run {done.run_id})" if done.run_id is not None else ""
    console.print(f"recurring run {display_name} ({name}, {cron}) on {host}: {done.action}, "
                  f"{done.recurring_run_id}{row}" + (f"; deleted {deleted}" if deleted else ""),
                  highlight=False, soft_wrap=True)


@app.command("status")
def status(
    ctx: typer.Context,
    run_ids: list[str] = typer.Argument(None, metavar="[RUN_ID]...",
                                        help="KFP run ids; default: every open KFP run in training_runs on the host."),
    host: str | None = typer.Option(None, "--host", help="KFP API endpoint, e.g. http://127.0.0.1:8888; "
                                                         "default KFP_HOST."),
) -> None:
    """Read runs' outcomes from Kubeflow Pipelines into `training_runs`: status, error, finish time, version."""
    from rich.table import Table
    from rich.text import Text

    from pipelines.status import KfpStatusError, sync

    host = host or settings_of(ctx).kfp_host
    if not host:
        fail("no KFP host: pass --host URL or set KFP_HOST (from a workstation: "
             "`kubectl -n kubeflow port-forward svc/ml-pipeline 8888:8888`, then --host http://127.0.0.1:8888)")
    if not host.startswith(("http://", "https://")):
        fail(f"--host {host!r} is not an http(s) URL; use e.g. http://127.0.0.1:8888")
    engine = ready_engine(ctx)
    try:
        done = sync(engine, host, run_ids)
    except KfpStatusError as exc:
        fail(f"{exc}; nothing was written")
    if not done.runs and not done.unknown:
        console.print(f"no open KFP run in training_runs for {host}", highlight=False)
    if done.runs:
        table = Table("training run", "KFP run", "KFP state", "status", "error", "version",
                      title=f"KFP runs on {host}")
        colour = {"failed": "bold red", "succeeded": "green", "cancelled": "yellow", "skipped": "yellow"}
        for run in done.runs:  # KFP's words are shown as text, never as markup
            note = " (added)" if run.added else (" (unchanged)" if run.kept else "")
            table.add_row(f"{run.run_id}{note}", Text(run.kfp_run_id), Text(run.state),
                          Text(run.status, style=colour.get(run.status, "")), Text((run.error or "")[:200]),
                          Text(run.model_version or ""))
        console.print(table)
    for missing in done.unknown:
        err_console.print(Text.assemble(("error:", "bold red"), f" {missing}; its row stays as it was"),
                          highlight=False, soft_wrap=True)
    if done.unknown:
        raise typer.Exit(2)
