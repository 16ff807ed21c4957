"""Reading a local run's progress from KFP's log (`pipelines.progress`), on the log of a real run: KFP 2.17's local
runner running lstm-training on the EURUSD sample (`data/kfp-local-lstm-training.log`, kept as it was written)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from aicash.cli.run_view import RunView
from pipelines.progress import RunLog, WarningFilter, figure_of

REAL_LOG = Path(__file__).parent / "data" / "kfp-local-lstm-training.log"


def replay(lines: list[str]) -> RunLog:
    log = RunLog()
    for line in lines:
        log.feed(line)
    log.finish()
    return log


def test_every_task_of_a_real_run_with_its_status_duration_and_figure() -> None:
    log = replay(REAL_LOG.read_text().splitlines(keepends=True))
    assert [(t.name, t.status, t.figure) for t in log.tasks] == [
        ("materialize-features", "succeeded", "4,951 rows, 1 series"),
        ("build-training-set", "succeeded", "4,951 rows"),
        ("merge-training-sets", "succeeded", "4,951 rows"),
        ("train", "succeeded", "4,147 samples"),
        ("evaluate", "succeeded", "accuracy 0.472"),
        ("gate", "succeeded", "rejected"),
        ("register-2", "succeeded", "registered v20261206-231655-38557bd"),
    ]
    # durations from the log's own clock: train ran 23:15:33.460 -> 23:16:47.481
    assert round(log.tasks[3].seconds, 1) == 74.0
    assert all(t.settled for t in log.tasks) and log.outcome == "SUCCESS"


def test_a_run_cut_short_leaves_its_task_running_then_stopped() -> None:
    lines = REAL_LOG.read_text().splitlines(keepends=True)
    cut = next(i for i, line in enumerate(lines) if "Executing task" in line and "'train'" in line)
    log = RunLog()
    for line in lines[: cut + 5]:
        log.feed(line)
    assert log.tasks[-1].name == "train" and log.tasks[-1].status == "running" and not log.tasks[-1].settled
    assert log.tasks[-2].settled  # the previous task's outputs were read before train started
    log.finish()
    assert log.tasks[-1].status == "stopped" and log.outcome is None


def test_a_failed_task_and_repeated_names() -> None:
    lines = [
        "10:00:00.000 - INFO - Executing task \x1b[96m'build-training-set'\x1b[0m\n",
        "10:00:01.000 - INFO - Task \x1b[96m'build-training-set'\x1b[0m finished with status \x1b[92mSUCCESS\x1b[0m\n",
        "10:00:01.100 - INFO - Executing task \x1b[96m'build-training-set'\x1b[0m\n",
        "10:00:03.600 - ERROR - Task \x1b[96m'build-training-set'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m\n",
        "10:00:03.700 - INFO - Pipeline \x1b[95m'lstm-training'\x1b[0m finished with status \x1b[91mFAILURE\x1b[0m\n",
    ]
    log = replay(lines)
    assert [(t.name, t.status, round(t.seconds, 1)) for t in log.tasks] == [
        ("build-training-set", "succeeded", 1.0), ("build-training-set #2", "failed", 2.5)]
    assert log.outcome == "FAILURE"


def test_iterations_side_by_side_that_both_end_before_either_block_keep_their_own_figures() -> None:
    """A ParallelFor's iterations share a name and KFP logs a task's end and its outputs block in two calls: both
    ends may come before either block (seen in CI), and each block still goes to a task of its own."""
    trial = "\x1b[96m'run-trial'\x1b[0m"
    ended = "finished with status \x1b[92mSUCCESS\x1b[0m\n"

    def block(at: str, number: int, family: str, sharpe: str) -> list[str]:
        return [f"{at} - INFO - Task {trial} outputs:\n", f"    Output: 'trial {number} {family}: Sharpe {sharpe}'\n",
                f"    trial: Dataset( name='trial', metadata={{'number': {number}.0}} )\n", "-" * 80 + "\n"]

    for first, second in ((1, 2), (2, 1)):
        lines = [f"10:00:00.000 - INFO - Executing task {trial}\n", f"10:00:00.001 - INFO - Executing task {trial}\n",
                 f"    trial {second}: lightgbm {{}}\n", f"    trial {first}: linear {{}}\n",
                 f"10:00:05.000 - INFO - Task {trial} {ended}", f"10:00:05.002 - INFO - Task {trial} {ended}",
                 *block("10:00:05.001", first, "linear", "2.28"), *block("10:00:05.003", second, "lightgbm", "-3.55")]
        log = replay(lines)
        assert sorted(t.figure for t in log.tasks) == [
            "trial 1 linear: Sharpe 2.28" if first == 1 else "trial 1 lightgbm: Sharpe -3.55",
            "trial 2 lightgbm: Sharpe -3.55" if first == 1 else "trial 2 linear: Sharpe 2.28"]
        assert [t.status for t in log.tasks] == ["succeeded", "succeeded"] and all(t.settled for t in log.tasks)


def test_figures_of_the_other_tasks() -> None:
    assert figure_of("save-weights", "    Output: 'saved version 2: out-of-sample auc 0.9634 beats 0.6843'") == (
        "saved version 2: out-of-sample auc 0.9634 beats 0.6843")
    assert figure_of("register", "    Output: 'v1'") == "registered v1"
    optimized = """    Output: '{"source": "trades", "oos_score": 0.61234, "improves": true}'"""
    assert figure_of("optimize-weights-2", optimized) == "out-of-sample score 0.6123"
    assert figure_of("unknown-task", "    Output: 3") == ""


def test_python_warnings_are_filtered_from_the_streamed_log_and_nothing_else() -> None:
    lines = REAL_LOG.read_text().splitlines(keepends=True)
    keep = WarningFilter()
    kept = [line for line in lines if keep.keep(line)]
    assert sum("Warning:" in line for line in lines) == 8  # 7 RuntimeWarnings (one per task), 1 UserWarning
    assert not any("Warning:" in line or "_warn_local_only_noops" in line for line in kept)
    assert len(lines) - len(kept) == 16  # those 8, each with the source line printed under it
    assert any("Executing task" in line for line in kept)


def test_the_view_prints_one_line_per_task_once_its_figure_is_known() -> None:
    out = io.StringIO()
    with RunView(Console(file=out, width=100, force_terminal=False)) as view:
        for line in REAL_LOG.read_text().splitlines(keepends=True):
            view.feed(line)
    printed = out.getvalue().splitlines()
    assert len(printed) == 7
    assert printed[3].split() == ["✓", "train", "succeeded", "74.0s", "4,147", "samples"]
    assert printed[5].split()[-1] == "rejected"


def test_the_streamed_log_leaves_warnings_out_and_the_file_keeps_them(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`--verbose`: the child's output goes to the terminal without Python's warnings, all of it to the log file,
    and every line to the live view's callback."""
    import subprocess
    import sys

    from pipelines.launch import _copy_output

    script = "import warnings; print('before', flush=True); warnings.warn('noisy', RuntimeWarning); print('after')"
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,  # noqa: S603
                            stderr=subprocess.STDOUT)
    seen: list[str] = []
    with (tmp_path / "run.log").open("wb") as log:
        _copy_output(proc, log, True, seen.append).join(10)
    proc.wait()
    assert capsys.readouterr().out.split() == ["before", "after"]
    assert "RuntimeWarning: noisy" in (tmp_path / "run.log").read_text()
    assert seen == ["before\n", "<string>:1: RuntimeWarning: noisy\n", "after\n"]
