"""What a local run is doing, read from the log KFP's local runner writes: which task started, which finished
and how, and the one figure of each task that matters (rows, samples, accuracy, the gate's decision, the version).

KFP 2.17's runner writes, per task, `HH:MM:SS.mmm - INFO - Executing task 'NAME'`, the task's streamed output, then
`Task 'NAME' finished with status SUCCESS` (or FAILURE) and an indented `Task 'NAME' outputs:` block closed by a
line of dashes; the run ends with `Pipeline 'NAME' finished with status ...`. `RunLog.feed` takes those lines one
at a time, as they come; anything else is ignored, so a runner that says less still runs, only with fewer details.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STAMP = r"^(?P<at>\d\d:\d\d:\d\d\.\d+) - \w+ - "
STARTED = re.compile(STAMP + r"Executing task '(?P<task>[^']+)'")
FINISHED = re.compile(STAMP + r"Task '(?P<task>[^']+)' finished with status (?P<status>\w+)")
OUTPUTS = re.compile(STAMP + r"Task '(?P<task>[^']+)' outputs:")
PIPELINE_DONE = re.compile(STAMP + r"Pipeline '[^']+' finished with status (?P<status>\w+)")
RUNNER_LINE = re.compile(STAMP)
# A model-search trial task's first line (pipelines.steps.run_trial): which trial it runs, shown until it ends.
TRIAL_STARTED = re.compile(r"^\s*trial (?P<number>\d+): (?P<family>\w+) (?P<params>\{.*\})\s*$")
FIGURE_WIDTH = 100
RULE = re.compile(r"^-{20,}\s*$")
# A Python warning as `warnings` prints it: `path.py:81: RuntimeWarning: text`, then the source line, indented.
WARNING = re.compile(r"^\s*\S+:\d+: \w*Warning: ")


@dataclass
class Task:
    """One task of the run: its name (with `#2`, `#3`... for a repeated one, such as a ParallelFor's iterations),
    status (`running`, `succeeded`, `failed`, `stopped`), its start and end on the log's clock (seconds since
    midnight) and its figure."""

    name: str
    started: float
    status: str = "running"
    finished: float | None = None
    figure: str = ""
    settled: bool = False  # finished and its outputs read: nothing more will change
    _since: float = field(default_factory=time.monotonic)  # this process's clock, for a task still running

    @property
    def seconds(self) -> float:
        """How long it ran (the log's times), or has been running so far."""
        if self.finished is None:
            return time.monotonic() - self._since
        return (self.finished - self.started) % 86_400  # a run across midnight


def _clock(stamp: str) -> float:
    """`HH:MM:SS.mmm` as seconds since midnight."""
    hours, minutes, seconds = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


SPEC_NUMBER = '"number"'  # once in each trial spec (JSON) of the plan-trials task's output list


def _number(text: str) -> str:
    return f"{round(float(text)):,}"


# Per task name (KFP's, `register-2` being the `register` of a dsl.If branch): the figure its outputs block gives.
FIGURES: tuple[tuple[str, re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
    ("materialize-features", re.compile(r"OfflineTables\(series=(\d+), rows=(\d+)"),
     lambda m: f"{_number(m[2])} rows, {m[1]} series"),
    ("materialize-features", re.compile(r"up_to_date=True"), lambda m: "up to date"),
    ("build-training-set", re.compile(r"^\s*Output: (\d+)\s*$", re.M), lambda m: f"{_number(m[1])} rows"),
    ("merge-training-sets", re.compile(r"^\s*Output: (\d+)\s*$", re.M), lambda m: f"{_number(m[1])} rows"),
    ("train", re.compile(r"'training_samples': ([\d.]+)"), lambda m: f"{_number(m[1])} samples"),
    ("evaluate", re.compile(r"'model_accuracy': ([\d.]+)"), lambda m: f"accuracy {float(m[1]):.3f}"),
    ("gate", re.compile(r"decision: '(\w+)'"), lambda m: m[1]),
    ("register", re.compile(r"Output: '([^']+)'"), lambda m: f"registered {m[1]}"),
    ("plan-trials", re.compile(r"^\s*Output: \[", re.M), lambda m: f"{m.string.count(SPEC_NUMBER)} trials"),
    ("run-trial", re.compile(r"Output: '(trial [^']+)'"), lambda m: m[1]),
    ("select-and-train", re.compile(r"Output: '(winner [^']+)'"), lambda m: m[1]),
    ("optimize-weights", re.compile(r"\"oos_score\": (-?[\d.]+(?:[eE]-?\d+)?)"),
     lambda m: f"out-of-sample score {float(m[1]):.4f}"),
    ("save-weights", re.compile(r"Output: '([^']{1,200})"), lambda m: m[1]),
)


def figure_of(task: str, outputs: str) -> str:
    """The figure that matters in task `task`'s outputs block (its name without a `-N` suffix or `#N`), or ""."""
    base = re.sub(r"(-\d+)?( #\d+)?$", "", task)
    found = [fmt(m) for name, pattern, fmt in FIGURES if name == base and (m := pattern.search(outputs))]
    return found[0] if found else ""


@dataclass
class RunLog:
    """The tasks of one run, updated line by line from its log; `on_change` is called after each change."""

    tasks: list[Task] = field(default_factory=list)
    outcome: str | None = None  # KFP's word for the whole run once it says it: SUCCESS, FAILURE
    on_change: Callable[[RunLog], None] | None = None
    _block_task: Task | None = None
    _block: list[str] = field(default_factory=list)
    # tasks that succeeded and whose outputs block has not come yet, in the order their ends were read: iterations
    # of a ParallelFor running side by side may both end before either block is logged
    _awaiting: list[Task] = field(default_factory=list)

    def feed(self, line: str) -> None:
        """Take one line of the runner's output."""
        line = ANSI.sub("", line).rstrip("\n")
        if self._block_task is not None:
            # the block ends at its rule, or at the runner's next own line (a task running beside it may come first)
            if not RULE.match(line) and not RUNNER_LINE.match(line):
                self._block.append(line)
                return
            self._close_block()
        if m := STARTED.match(line):
            self._settle()
            self.tasks.append(Task(self._unique(m["task"]), _clock(m["at"])))
        elif m := FINISHED.match(line):
            task = self._running(m["task"])
            if task is not None:
                task.status = "succeeded" if m["status"] == "SUCCESS" else "failed"
                task.finished = _clock(m["at"])
                if task.status == "succeeded":
                    self._awaiting.append(task)
        elif m := OUTPUTS.match(line):
            # the first task of that name whose end was read and whose block was not, else the latest of that name
            awaiting = next((t for t in self._awaiting if _base(t.name) == m["task"]), None)
            if awaiting is not None:
                self._awaiting.remove(awaiting)
            self._block_task = awaiting or self._last(m["task"])
            self._block = []
            return
        elif m := PIPELINE_DONE.match(line):
            self.outcome = m["status"]
            self._settle()
        elif (m := TRIAL_STARTED.match(line)) and (task := self._unlabelled("run-trial")) is not None:
            task.figure = f"trial {m['number']} {m['family']} {m['params']}"[:FIGURE_WIDTH]  # its end replaces it
        else:
            return
        self._changed()

    def finish(self) -> None:
        """The log ended: close an open outputs block; tasks still running stopped with the run."""
        self._close_block()
        for task in self.tasks:
            if task.status == "running":
                task.status, task.finished = "stopped", task.started + task.seconds
        self._settle()
        self._changed()

    def _close_block(self) -> None:
        if self._block_task is not None:
            found = figure_of(self._block_task.name, "\n".join(self._block))
            self._block_task.figure = found or self._block_task.figure
            self._block_task.settled = self._block_task.status != "running"
            self._block_task, self._block = None, []
            self._changed()

    def _settle(self) -> None:
        for task in self.tasks:
            task.settled = task.settled or task.status != "running"

    def _unique(self, name: str) -> str:
        seen = sum(1 for t in self.tasks if t.name == name or t.name.startswith(f"{name} #"))
        return name if seen == 0 else f"{name} #{seen + 1}"

    def _running(self, name: str) -> Task | None:
        return next((t for t in self.tasks if _base(t.name) == name and t.status == "running"), None)

    def _unlabelled(self, name: str) -> Task | None:
        """The first task of that name still running without a figure (a trial that has not said which it is)."""
        return next((t for t in self.tasks if _base(t.name) == name and t.status == "running" and not t.figure), None)

    def _last(self, name: str) -> Task | None:
        return next((t for t in reversed(self.tasks) if _base(t.name) == name), None)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self)


def _base(name: str) -> str:
    return name.split(" #")[0]


class WarningFilter:
    """Drops Python warnings (the `file.py:N: XWarning: ...` line and the source line under it) from a stream of
    lines, so the terminal gets the log without them; the log file keeps them."""

    def __init__(self) -> None:
        self._after_warning = False

    def keep(self, line: str) -> bool:
        text = ANSI.sub("", line)
        if WARNING.match(text):
            self._after_warning = True
            return False
        if self._after_warning and text.startswith("  ") and not text.strip().startswith("["):
            self._after_warning = False
            return False
        self._after_warning = False
        return True
