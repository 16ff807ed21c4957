"""Run, compile, submit and schedule the pipelines: KFP's local runner here, `kfp.Client` against a cluster.

`python -m pipelines.runner NAME ARGUMENTS_JSON PIPELINE_ROOT` runs one pipeline with the local runner (the
service's child process for `POST /train`, see `pipelines.launch.ChildProcess`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kfp import compiler

from aicash.settings import Settings
from pipelines import lstm_training, model_search, signal_weights

DEFAULT_IMAGE: str = Settings.model_fields["kfp_image"].default  # KFP_IMAGE's default, the one place it is written
DEFAULT_TIMEOUT_SECONDS: int = Settings.model_fields["training_timeout_seconds"].default  # the setting's default
PIPELINES: dict[str, Callable[[str, int], Any]] = {
    lstm_training.NAME: lstm_training.build,
    model_search.NAME: model_search.build,
    signal_weights.NAME: signal_weights.build,
}
LOCAL_PARALLELISM = 2  # tasks at once in KFP's local runner (its ParallelFor runs at most 2 iterations at once)
COMPILED_DIR = Path("pipelines") / "compiled"  # relative to the working folder: the checkout keeps its IR there


class UnknownPipelineError(ValueError):
    """No pipeline of that name."""


def pipeline_fn(name: str, image: str = DEFAULT_IMAGE, timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS) -> Any:
    """Pipeline `name` for the platform image `image`; KFP stops a run of it after `timeout_seconds`."""
    if name not in PIPELINES:
        raise UnknownPipelineError(f"unknown pipeline {name!r}: use one of {', '.join(PIPELINES)}")
    return PIPELINES[name](image, timeout_seconds)


def compile_all(out_dir: Path = COMPILED_DIR, image: str = DEFAULT_IMAGE,
                timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS) -> list[Path]:
    """The IR YAML of every pipeline, one file each (`<name>.yaml`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in PIPELINES:
        path = out_dir / f"{name}.yaml"
        compiler.Compiler().compile(pipeline_fn(name, image, timeout_seconds), str(path))
        paths.append(path)
    return paths


def run_local(name: str, arguments: dict[str, Any], pipeline_root: Path) -> Any:
    """Run a pipeline here with KFP's SubprocessRunner in the current environment (no caching locally); a
    ParallelFor runs up to LOCAL_PARALLELISM iterations at once."""
    from kfp import local
    from kfp.local.pip_install_manager import pip_install_manager

    pipeline_root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root), raise_on_error=True)
    # Each task's command starts with a `pip install kfp` (a no-op here: kfp is installed), and the runner holds one
    # lock around a whole task that has one: a ParallelFor's iterations would run one at a time. Let as many run
    # as the runner's own ParallelFor allows (2).
    pip_install_manager.configure(serialize_installs=False, max_concurrent=LOCAL_PARALLELISM)
    with _root_logger_kept(), _shared_task_logging():
        return pipeline_fn(name)(**arguments)


@contextlib.contextmanager
def _root_logger_kept() -> Iterator[None]:
    """The root logger's handlers and level as they were. KFP's local runner swaps its own handler in and out
    around each task; the iterations of a ParallelFor do that from several threads at once, and one of them can
    leave its handler (bound to the stdout of that moment) behind."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@contextlib.contextmanager
def _shared_task_logging() -> Iterator[None]:
    """KFP's local runner installs its log handler and level, and an indenting `print`, around each task, and puts
    back what it found when the task ends; a ParallelFor's iterations do that from several threads at once and put
    back each other's state, which loses lines (a task's end and outputs among them). For this run the first task
    in installs them and the last one out restores them."""
    from kfp.local import logging_utils

    originals = {"local_logger_context": logging_utils.local_logger_context,
                 "indented_print": logging_utils.indented_print}
    lock = threading.Lock()

    def shared(name: str) -> Callable[[], contextlib.AbstractContextManager[None]]:
        depth = 0
        outer: contextlib.AbstractContextManager[None] | None = None

        @contextlib.contextmanager
        def context() -> Iterator[None]:
            nonlocal depth, outer
            with lock:
                if depth == 0:
                    outer = originals[name]()
                    outer.__enter__()
                depth += 1
            try:
                yield
            finally:
                with lock:
                    depth -= 1
                    if depth == 0 and outer is not None:
                        outer.__exit__(None, None, None)

        return context

    for name in originals:
        setattr(logging_utils, name, shared(name))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(logging_utils, name, original)


def _package(name: str, image: str, timeout_seconds: int) -> str:
    path = Path(tempfile.mkdtemp(prefix="aicash-kfp-")) / f"{name}.yaml"
    compiler.Compiler().compile(pipeline_fn(name, image, timeout_seconds), str(path))
    return str(path)


def client(host: str) -> Any:
    import kfp

    return kfp.Client(host=host)


def submit(name: str, host: str, arguments: dict[str, Any], image: str = DEFAULT_IMAGE,
           experiment: str = "aicash", timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS) -> str:
    """Create a run on the KFP server at `host`, stopped by KFP after `timeout_seconds`; returns the run id."""
    run = client(host).create_run_from_pipeline_package(
        _package(name, image, timeout_seconds), arguments=arguments, experiment_name=experiment, enable_caching=True,
        run_name=f"{name}-{os.getpid()}",
    )
    return str(run.run_id)


def schedule(name: str, host: str, cron: str, arguments: dict[str, Any], image: str = DEFAULT_IMAGE,
             experiment: str = "aicash", timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS) -> str:
    """Create a recurring run (KFP's six-field cron: seconds first), each run stopped after `timeout_seconds`;
    returns the recurring run id."""
    kfp_client = client(host)
    experiment_id = kfp_client.create_experiment(name=experiment).experiment_id
    job = kfp_client.create_recurring_run(
        experiment_id=experiment_id, job_name=f"{name}-schedule", cron_expression=cron,
        pipeline_package_path=_package(name, image, timeout_seconds), params=arguments, enable_caching=True,
    )
    return str(job.recurring_run_id)


if __name__ == "__main__":
    run_local(sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3]))
