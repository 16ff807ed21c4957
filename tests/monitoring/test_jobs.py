"""monitoring/crontab stays true: every job is a valid `aicash monitor` command line, at the cluster's schedule
with the cluster's options (infra's MonitoringConfig defaults, which both stacks use)."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer

from aicash.cli.main import app

CRONTAB = Path(__file__).resolve().parents[2] / "monitoring" / "crontab"


def _jobs() -> dict[str, tuple[str, list[str]]]:
    """monitor subcommand -> (five-field schedule, its arguments)."""
    jobs = {}
    for line in CRONTAB.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#") or "=" in line.split()[0]:
            continue
        fields = line.split(None, 5)
        command = shlex.split(fields[5])
        words = command[command.index(".venv/bin/aicash") + 1 :]
        assert words[0] == "monitor", line
        jobs[words[1]] = (" ".join(fields[:5]), words[2:])
    return jobs


def test_every_job_parses_as_an_aicash_monitor_command() -> None:
    group = typer.main.get_command(app)
    with group.context_class(group) as ctx:
        monitor = group.get_command(ctx, "monitor")  # type: ignore[attr-defined]
        for name, (_, arguments) in _jobs().items():
            command = monitor.get_command(ctx, name)
            assert command is not None, name
            command.make_context(name, list(arguments))  # raises on an unknown option or a bad value


def test_jobs_match_the_clusters_cronjobs() -> None:
    from infra.config import MonitoringConfig

    cfg = MonitoringConfig()
    jobs = _jobs()
    assert set(jobs) == {"drift", "check", "canary"}
    assert jobs["drift"][0] == cfg.drift_schedule and jobs["check"][0] == cfg.check_schedule
    assert jobs["canary"][0] == cfg.canary_schedule
    assert "--email" in jobs["drift"][1] and ("--retrain" in jobs["drift"][1]) == cfg.retrain_on_drift
    assert "--email" in jobs["check"][1]
    assert ("--apply" in jobs["canary"][1]) == cfg.canary_apply
