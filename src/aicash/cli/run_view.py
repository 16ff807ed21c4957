"""What `aicash pipeline run` shows while a local run goes and when it ends: one line per task (name, status,
duration, the figure that matters), live on a terminal (rich), a line per finished task elsewhere (a CI log, a
pipe); then the summary of the model against the baselines, the gate's decision and the version registered."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from aicash.registry import ModelRecord
    from pipelines.progress import RunLog, Task

MARKS = {"succeeded": ("✓", "green"), "failed": ("✗", "bold red"), "stopped": ("■", "yellow")}
BASELINES = ("majority", "logistic", "rule")  # the trainer's baselines, in the order the gate names them


def task_line(task: Task) -> Table:
    """One task as a row: mark (a spinner while it runs), name, status, seconds, figure."""
    row = Table.grid(padding=(0, 1))
    for width in (1, 22, 9, 7):
        row.add_column(width=width, no_wrap=True)
    row.add_column(no_wrap=False)
    mark: Any = Spinner("dots", style="cyan") if task.status == "running" else Text(*MARKS.get(task.status, ("?",)))
    row.add_row(mark, Text(task.name, style="bold"), Text(task.status), Text(f"{task.seconds:5.1f}s"),
                Text(task.figure, style="cyan"))
    return row


class RunView:
    """Feeds the child's log lines to a `RunLog` and shows its tasks: a rich Live block on a terminal, else one
    printed line per finished task. Use as a context manager around the run."""

    def __init__(self, console: Console) -> None:
        from pipelines.progress import RunLog

        self.console = console
        self.live = console.is_terminal
        self.log: RunLog = RunLog(on_change=self._changed)
        self._printed = 0
        self._lock = threading.Lock()
        self._live: Live | None = None

    def __enter__(self) -> RunView:
        if self.live:
            self._live = Live(self._render(), console=self.console, refresh_per_second=4, transient=False,
                              get_renderable=self._render)
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.log.finish()
        if self._live is not None:
            self._live.stop()

    def feed(self, line: str) -> None:
        """One line of the child's output (called from the thread that copies it)."""
        with self._lock:
            self.log.feed(line)

    def _render(self) -> Group:
        return Group(*(task_line(t) for t in self.log.tasks))

    def _changed(self, log: RunLog) -> None:
        if self.live:
            return  # Live redraws by itself
        for task in log.tasks[self._printed:]:  # in order, each once it is settled (finished, outputs read)
            if not task.settled:
                break
            self.console.print(task_line(task))
            self._printed += 1


def report_path(record: ModelRecord) -> str | None:
    """Where the registered version's report.html is: a local path, or the object store's URI."""
    if not record.artifact_uri:
        return None
    uri = record.artifact_uri.rstrip("/") + "/report.html"
    parts = urlsplit(uri)
    return unquote(parts.path) if parts.scheme == "file" else uri


def _figure(value: Any, style: str = "{:.3f}") -> str:
    return "n/a" if value is None else style.format(value)


def comparison(metrics: dict[str, Any]) -> Table | None:
    """The model against each baseline, out of sample: accuracy, directional accuracy of traded signals, win rate
    and trades, Sharpe after costs, information coefficient."""
    aggregate = metrics.get("aggregate")
    if not isinstance(aggregate, dict) or not isinstance(aggregate.get("model"), dict):
        return None
    rows = [("model", aggregate["model"])]
    baselines = aggregate.get("baselines") or {}
    rows += [(name, baselines[name]) for name in (*BASELINES, *sorted(set(baselines) - set(BASELINES)))
             if name in baselines]
    table = Table("", "accuracy", "directional (traded)", "win rate (trades)", "Sharpe", "IC",
                  title="out of sample (walk-forward)", title_justify="left", box=None,
                  header_style="bold underline", pad_edge=False)
    for name, m in rows:
        table.add_row(name, _figure(m.get("accuracy")), _figure(m.get("directional_accuracy")),
                      f"{_figure(m.get('win_rate'))} ({m.get('trades', 0):,})", _figure(m.get("sharpe"), "{:.2f}"),
                      _figure(m.get("information_coefficient")), style="bold" if name == "model" else None)
    return table


def search_line(metrics: dict[str, Any]) -> str | None:
    """The search behind the model, in one line: trials, deflated Sharpe ratio, probability of backtest
    overfitting; None when metrics.json has no `search` block."""
    search = metrics.get("search")
    if not isinstance(search, dict):
        return None
    dsr, pbo = (block if isinstance(block := search.get(key), dict) else {} for key in ("deflated_sharpe", "pbo"))
    trials = search.get("trials")
    return (f"search: {trials} trial{'' if trials == 1 else 's'}, deflated Sharpe ratio "
            f"{_figure(dsr.get('probability'))}, PBO {_figure(pbo.get('probability'))}")


def search_lines(metrics: dict[str, Any]) -> list[str]:
    """A model search behind the model (metrics.json's search block of several trials), in a few lines: trials, the
    experiment, the winner and its parameters, DSR and PBO with their figures; [] for a single configuration."""
    search = metrics.get("search")
    if not isinstance(search, dict) or not isinstance(search.get("trials"), int) or search["trials"] < 2:
        return []
    params = ", ".join(f"{k}={_param(v)}" for k, v in (search.get("params") or {}).items())
    experiment = f" (experiment {search['experiment_id']})" if search.get("experiment_id") is not None else ""
    lines = [f"search: {search['trials']} trials{experiment}; winner trial {search.get('selected_trial')}, "
             f"{search.get('family')}" + (f" ({params})" if params else "")]
    dsr = search.get("deflated_sharpe") or {}
    if dsr:
        sharpe, luck = (_figure(dsr.get(k), "{:.4f}") for k in ("sharpe", "expected_max_sharpe"))
        lines.append(f"  deflated Sharpe ratio {_figure(dsr.get('probability'))}: per-bar Sharpe {sharpe} against "
                     f"{luck} expected from the best of {dsr.get('n_trials')} by luck")
    pbo = search.get("pbo")
    lines.append(f"  probability of backtest overfitting {_figure(pbo.get('probability'))} ({pbo.get('splits'):,} "
                 f"splits of {pbo.get('n_blocks')} blocks)" if isinstance(pbo, dict)
                 else "  probability of backtest overfitting n/a (too few bars for its blocks)")
    return lines


def _param(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def print_summary(console: Console, record: ModelRecord) -> None:
    """The end of a training run: the comparison, the search behind the model, the gate's decision and reasons, the
    version, the report (and the search report of a model search)."""
    table = comparison(record.metrics)
    if table is not None:
        console.print(table)
    search = search_line(record.metrics)
    for line in search_lines(record.metrics) or ([] if search is None else [search]):
        console.print(Text(line), highlight=False, soft_wrap=True)
    decision = (("approved", "bold green") if record.gate_passed else ("rejected", "bold red")
                if record.gate_passed is False else ("not run", "yellow"))
    console.print(Text.assemble("gate: ", decision), highlight=False)
    for reason in record.reasons:
        console.print(Text(f"  - {reason}"), highlight=False, soft_wrap=True)
    console.print(Text(f"registered {record.version} as {record.status}: `aicash models show {record.version}`"),
                  highlight=False, soft_wrap=True)
    report = report_path(record)
    if report:
        console.print(Text(f"report: {report}"), highlight=False, soft_wrap=True)
    if report and (record.metrics.get("search") or {}).get("experiment_id") is not None:
        from aicash.training.search import SEARCH_REPORT_FILE

        search_report = report.rsplit("/", 1)[0] + "/" + SEARCH_REPORT_FILE
        console.print(Text(f"search report: {search_report}"), highlight=False, soft_wrap=True)
