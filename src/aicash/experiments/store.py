"""Model searches in the database (`experiments`, `experiment_trials`): record one with its trials, link it to the
version it registered and the gate's decision, list them, read one back with its leaderboard.

Rows come back as plain dicts (JSON-ready apart from the datetimes), the shape `render_search_report` takes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from aicash.db.engine import session_scope
from aicash.db.models import Experiment, ExperimentTrial, utcnow
from aicash.json_values import json_safe

if TYPE_CHECKING:
    import pandas as pd

DECISIONS = ("approved", "rejected")
# The bounded text columns and their lengths (the migration's String(n)): a longer value is refused here, on SQLite
# as on PostgreSQL, never truncated.
LIMITS = {"pipeline": 64, "timeframe": 8, "sampler": 32, "family": 32, "version": 64}
TRIAL_FIGURES = ("accuracy", "directional_accuracy", "win_rate", "trades", "coverage", "calibration_error", "sharpe",
                 "information_coefficient", "seconds")
# The stored equity curves are thinned to at most this many points (a chart's worth; the curves are cumulative).
MAX_EQUITY_POINTS = 600


class ExperimentError(ValueError):
    """An experiment that cannot be recorded as given; the message names the field and the fix."""


class UnknownExperimentError(LookupError):
    """No experiment with that id is recorded."""


def _text(field: str, value: Any, limit_key: str | None = None) -> str:
    limit = LIMITS[limit_key or field]
    if not isinstance(value, str) or not value:
        raise ExperimentError(f"{field}: a non-empty text is needed, got {value!r}")
    if len(value) > limit:
        raise ExperimentError(f"{field}: {value[:40]!r}... is {len(value)} characters, more than the {limit} the "
                              "database column holds: use a shorter name")
    return value


def _json_safe(value: Any, field: str) -> Any:
    return json_safe(value, lambda bad: ExperimentError(
        f"{field}: {bad!r} of type {type(bad).__name__} is not JSON: use numbers or text"))


def _number(value: Any, field: str) -> float | None:
    if value is None:
        return None
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExperimentError(f"{field}: a number or null is needed, got {value!r}")
    return float(value) if math.isfinite(value) else None


def _probability(block: Any, field: str) -> float | None:
    """`probability` of a `deflated_sharpe` or `pbo` block; None when the block is null."""
    if block is None:
        return None
    if not isinstance(block, Mapping):
        raise ExperimentError(f"search.{field}: an object with 'probability' or null is needed, got {block!r}")
    return _number(block.get("probability"), f"search.{field}.probability")


def _trial_row(experiment_id: int, trial: Mapping[str, Any], selected_trial: int) -> ExperimentTrial:
    number = trial.get("number")
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise ExperimentError(f"trials: 'number' must be a positive integer (1-based), got {number!r}")
    selected = number == selected_trial
    if trial.get("selected") and not selected:
        raise ExperimentError(f"trials: trial {number} is marked selected but search.selected_trial is "
                              f"{selected_trial}: mark only the winner")
    params = trial.get("params") or {}
    if not isinstance(params, Mapping):
        raise ExperimentError(f"trials: trial {number}'s 'params' must be an object, got {params!r}")
    figures = {name: _number(trial.get(name), f"trials[{number}].{name}") for name in TRIAL_FIGURES}
    trades = figures.pop("trades")
    return ExperimentTrial(
        experiment_id=experiment_id, number=number, selected=selected,
        family=_text(f"trials[{number}].family", trial.get("family"), "family"),
        params=_json_safe(params, f"trials[{number}].params"),
        trades=None if trades is None else int(trades), **figures,
    )


def record_experiment(
    engine: Engine,
    *,
    pipeline: str,
    series: Sequence[str],
    timeframe: str,
    space: Mapping[str, Any],
    seed: int | None,
    sampler: str,
    trials: list[dict[str, Any]],
    search: Mapping[str, Any],
    equity: pd.DataFrame | None = None,
) -> int:
    """Record a finished search and its trials; returns the experiment's id.

    `search`: metrics.json's "search" block (without `experiment_id`); `trials`: one dict per trial (number,
    family, params and the figures of `TRIAL_FIGURES`, None where undefined); `equity`: optionally, the winner's
    out-of-sample equity beside the baselines' (columns "model", baseline names, "buy_and_hold"), kept thinned so
    that `aicash experiments show --html` can draw it later. Bad input raises `ExperimentError` naming the field.
    """
    if not trials:
        raise ExperimentError("trials: a search has at least one trial; none were given")
    numbers = [t.get("number") for t in trials]
    if len(set(numbers)) != len(numbers):
        raise ExperimentError(f"trials: the trial numbers {numbers} repeat: number each trial once")
    selected_trial = search.get("selected_trial")
    if isinstance(selected_trial, bool) or not isinstance(selected_trial, int) or selected_trial not in numbers:
        raise ExperimentError(f"search.selected_trial: {selected_trial!r} is not among the trials' numbers {numbers}")
    n_trials = search.get("trials", len(trials))
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < len(trials):
        raise ExperimentError(f"search.trials: {n_trials!r} must be an integer, at least the {len(trials)} trials "
                              "given")
    if isinstance(series, str) or not series or not all(isinstance(s, str) and s for s in series):
        raise ExperimentError(f"series: a non-empty list of series names is needed, got {series!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ExperimentError(f"seed: an integer or null is needed, got {seed!r}")
    deflated = search.get("deflated_sharpe")
    row = Experiment(
        pipeline=_text("pipeline", pipeline), series=list(series), timeframe=_text("timeframe", timeframe),
        space=_json_safe(dict(space), "space"), seed=seed, sampler=_text("sampler", sampler),
        trials=n_trials, selected_trial=selected_trial,
        family=_text("search.family", search.get("family"), "family"),
        params=_json_safe(search.get("params") or {}, "search.params"),
        deflated_sharpe=_probability(deflated, "deflated_sharpe"),
        expected_max_sharpe=(_number(deflated.get("expected_max_sharpe"), "search.deflated_sharpe.expected_max_sharpe")
                             if isinstance(deflated, Mapping) else None),
        sharpe_variance=_number(search.get("sharpe_variance"), "search.sharpe_variance"),
        pbo=_probability(search.get("pbo"), "pbo"),
        search=_json_safe({k: v for k, v in search.items() if k != "experiment_id"}, "search"),
        equity=None if equity is None else equity_to_json(equity), reasons=[],
    )
    with session_scope(engine) as session:
        session.add(row)
        session.flush()
        session.add_all([_trial_row(row.id, trial, selected_trial) for trial in trials])
        return int(row.id)


def _experiment(session: Session, experiment_id: int) -> Experiment:
    row = session.get(Experiment, experiment_id)
    if row is None:
        raise UnknownExperimentError(f"no experiment with id {experiment_id}: `aicash experiments list` shows the "
                                     "recorded ones")
    return row


def link_version(engine: Engine, experiment_id: int, version: str | None, decision: str,
                 reasons: Sequence[str]) -> None:
    """Note the version the search registered (None when nothing was registered), the gate's decision ("approved"
    or "rejected") and its reasons; the experiment is finished from then on."""
    if decision not in DECISIONS:
        raise ExperimentError(f"decision: {decision!r} is not one of {', '.join(DECISIONS)}")
    if version is not None:
        _text("version", version)
    if isinstance(reasons, str) or not all(isinstance(r, str) for r in reasons):
        raise ExperimentError(f"reasons: a list of texts is needed, got {reasons!r}")
    with session_scope(engine) as session:
        row = _experiment(session, experiment_id)
        row.model_version, row.decision, row.reasons = version, decision, list(reasons)
        row.finished_at = utcnow()


_SUMMARY = ("id", "pipeline", "series", "timeframe", "seed", "sampler", "selected_trial", "family", "params",
            "deflated_sharpe", "expected_max_sharpe", "sharpe_variance", "pbo", "model_version", "decision", "reasons",
            "created_at", "finished_at")


def _summary(row: Experiment) -> dict[str, Any]:
    """The row's columns, its number of trials as `n_trials` (`trials` is the trials themselves in `get_experiment`)."""
    return {**{name: getattr(row, name) for name in _SUMMARY}, "n_trials": row.trials}


def _trial(row: ExperimentTrial) -> dict[str, Any]:
    return {"number": row.number, "family": row.family, "params": dict(row.params or {}),
            **{name: getattr(row, name) for name in TRIAL_FIGURES}, "selected": bool(row.selected)}


def list_experiments(engine: Engine, limit: int = 20) -> list[dict[str, Any]]:
    """The `limit` latest experiments, newest first, each with its number of trials (`n_trials`) and its winner's
    Sharpe (`sharpe`, annualised)."""
    if limit < 1:
        raise ExperimentError(f"limit: at least 1, got {limit}")
    with session_scope(engine) as session:
        rows = list(session.scalars(select(Experiment).order_by(Experiment.id.desc()).limit(limit)))
        winners = dict(session.execute(
            select(ExperimentTrial.experiment_id, ExperimentTrial.sharpe)
            .where(ExperimentTrial.selected, ExperimentTrial.experiment_id.in_([r.id for r in rows]))
        ).tuples().all())
        return [{**_summary(r), "sharpe": winners.get(r.id)} for r in rows]


def get_experiment(engine: Engine, experiment_id: int) -> dict[str, Any]:
    """One experiment: its columns (the number of trials as `n_trials`), the whole `search` block, the stored
    `equity` (or None) and `trials`, the trial records ordered by number. Raises `UnknownExperimentError` for an id
    that is not recorded."""
    with session_scope(engine) as session:
        row = _experiment(session, experiment_id)
        trials = session.scalars(select(ExperimentTrial).where(ExperimentTrial.experiment_id == experiment_id)
                                 .order_by(ExperimentTrial.number))
        return {**_summary(row), "space": dict(row.space or {}), "search": dict(row.search or {}),
                "equity": row.equity, "trials": [_trial(t) for t in trials]}


def equity_to_json(equity: pd.DataFrame) -> dict[str, Any]:
    """Equity curves as JSON: ISO time stamps and one list per column, thinned to `MAX_EQUITY_POINTS` (the last
    point always kept)."""
    import numpy as np

    step = max(1, math.ceil(len(equity) / MAX_EQUITY_POINTS))
    keep = sorted(set(range(0, len(equity), step)) | ({len(equity) - 1} if len(equity) else set()))
    thin = equity.iloc[keep]
    # columns and values as lists: JSONB keeps no key order, and the model's curve comes first
    return {"index": [stamp.isoformat() if hasattr(stamp, "isoformat") else str(stamp) for stamp in thin.index],
            "columns": [str(name) for name in thin.columns],
            "values": [[None if not np.isfinite(v) else float(v) for v in thin[name].to_numpy(float)]
                       for name in thin.columns]}


def equity_from_json(data: Mapping[str, Any] | None) -> pd.DataFrame | None:
    """The frame `equity_to_json` stored; None when nothing was stored."""
    if not data:
        return None
    import pandas as pd

    return pd.DataFrame(dict(zip(data["columns"], data["values"], strict=True)),
                        index=pd.DatetimeIndex(pd.to_datetime(data["index"]), name="ts"), dtype=float)
