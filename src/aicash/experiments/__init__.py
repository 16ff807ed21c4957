"""Model searches as experiments: stored in the database with every trial (the leaderboard), linked to the version
they registered and the gate's decision, and rendered as an HTML search report."""

from aicash.experiments.store import (
    DECISIONS,
    ExperimentError,
    UnknownExperimentError,
    equity_from_json,
    equity_to_json,
    get_experiment,
    link_version,
    list_experiments,
    record_experiment,
)

__all__ = [
    "DECISIONS",
    "ExperimentError",
    "UnknownExperimentError",
    "equity_from_json",
    "equity_to_json",
    "get_experiment",
    "link_version",
    "list_experiments",
    "record_experiment",
    "render_search_report",
]


def __getattr__(name: str):  # type: ignore[no-untyped-def]
    """`render_search_report` imported on first use: matplotlib stays out of the commands that only read the table."""
    if name == "render_search_report":
        from aicash.experiments.report import render_search_report

        return render_search_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
