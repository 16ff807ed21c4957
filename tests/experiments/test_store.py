"""`aicash.experiments.store` on SQLite and PostgreSQL: a search recorded and read back with its leaderboard, linked to
its version, listed; bad input refused naming the field; trials deleted with their experiment."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DataError

from aicash.db import migrate
from aicash.db.engine import make_engine
from aicash.experiments import (
    ExperimentError,
    UnknownExperimentError,
    equity_from_json,
    get_experiment,
    link_version,
    list_experiments,
)
from aicash.experiments.store import MAX_EQUITY_POINTS
from tests.support.experiments import EXPECTED_MAX, SPACE, make_equity, make_search, make_trials, record


def test_round_trip(engine: Engine) -> None:
    trials = make_trials()
    experiment_id = record(engine, trials=list(reversed(trials)))  # any order in, by number out
    got = get_experiment(engine, experiment_id)
    assert got["id"] == experiment_id and got["pipeline"] == "model-search" and got["series"] == ["EURUSD"]
    assert got["timeframe"] == "1h" and got["space"] == SPACE and got["seed"] == 7 and got["sampler"] == "random"
    assert (got["n_trials"], got["selected_trial"], got["family"], got["params"]) == (4, 3, "lightgbm",
                                                                                     {"num_leaves": 15})
    assert (got["deflated_sharpe"], got["expected_max_sharpe"], got["sharpe_variance"], got["pbo"]) == (
        0.97, EXPECTED_MAX, 0.0004, 0.2)
    assert "experiment_id" not in got["search"] and got["search"]["deflated_sharpe"]["observations"] == 2500
    assert got["model_version"] is None and got["decision"] is None and got["finished_at"] is None
    assert isinstance(got["created_at"], datetime) and got["equity"] is None

    assert [t["number"] for t in got["trials"]] == [1, 2, 3, 4]
    assert [t["selected"] for t in got["trials"]] == [False, False, True, False]
    third, fourth = got["trials"][2], got["trials"][3]
    assert third == {**trials[2], "information_coefficient": pytest.approx(0.06)}
    assert fourth["sharpe"] is None and fourth["directional_accuracy"] is None
    assert fourth["information_coefficient"] is None  # NaN stored as null, not refused

    link_version(engine, experiment_id, "v20261207-1", "rejected", ["deflated Sharpe ratio 0.61 < 0.95"])
    linked = get_experiment(engine, experiment_id)
    assert (linked["model_version"], linked["decision"]) == ("v20261207-1", "rejected")
    assert linked["reasons"] == ["deflated Sharpe ratio 0.61 < 0.95"] and linked["finished_at"] is not None


def test_list_is_newest_first_with_the_winners_sharpe(engine: Engine) -> None:
    first = record(engine)
    second = record(engine, search={**make_search(), "pbo": None}, series=["EURUSD", "GBPUSD"])
    listed = list_experiments(engine)
    assert [r["id"] for r in listed] == [second, first]
    assert listed[0]["sharpe"] == 2.5 and listed[0]["pbo"] is None and listed[1]["pbo"] == 0.2
    assert listed[0]["series"] == ["EURUSD", "GBPUSD"] and listed[0]["family"] == "lightgbm"
    assert [r["id"] for r in list_experiments(engine, limit=1)] == [second]
    with pytest.raises(ExperimentError, match="limit"):
        list_experiments(engine, limit=0)


def test_equity_is_kept_thinned(engine: Engine) -> None:
    equity = make_equity(1500)
    stored = equity_from_json(get_experiment(engine, record(engine, equity=equity))["equity"])
    assert stored is not None and list(stored.columns) == list(equity.columns)
    assert len(stored) <= MAX_EQUITY_POINTS + 1
    assert stored.index[-1] == equity.index[-1] and stored["model"].iloc[-1] == pytest.approx(equity["model"].iloc[-1])


def test_unknown_id_names_it(engine: Engine) -> None:
    with pytest.raises(UnknownExperimentError, match="no experiment with id 41"):
        get_experiment(engine, 41)
    with pytest.raises(LookupError, match="41"):
        link_version(engine, 41, "v1", "approved", [])


@pytest.mark.parametrize(("changes", "field"), [
    ({"trials": []}, "trials"),
    ({"sampler": "s" * 33}, "sampler"),
    ({"timeframe": "a-very-long-timeframe"}, "timeframe"),
    ({"series": "EURUSD"}, "series"),
    ({"search": {**make_search(), "selected_trial": 9}}, "selected_trial"),
    ({"search": {**make_search(), "trials": 2}}, "search.trials"),
    ({"search": {**make_search(), "family": "f" * 40}}, "search.family"),
    ({"trials": [{**t, "family": "x" * 33} if t["number"] == 2 else t for t in make_trials()]}, r"trials\[2\].family"),
    ({"trials": [{**t, "selected": True} for t in make_trials()]}, "selected"),
    ({"trials": [*make_trials(), make_trials()[0]]}, "repeat"),
    ({"search": {**make_search(), "params": {"x": object()}}}, "search.params"),
])
def test_bad_input_is_refused_naming_the_field(engine: Engine, changes: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ExperimentError, match=field):
        record(engine, **changes)
    assert list_experiments(engine) == []  # nothing half-recorded


def test_link_refuses_a_bad_decision_or_version(engine: Engine) -> None:
    experiment_id = record(engine)
    with pytest.raises(ExperimentError, match="decision"):
        link_version(engine, experiment_id, "v1", "maybe", [])
    with pytest.raises(ExperimentError, match="version"):
        link_version(engine, experiment_id, "v" * 65, "approved", [])
    assert get_experiment(engine, experiment_id)["decision"] is None


def test_trials_go_with_their_experiment(engine: Engine) -> None:
    kept, dropped = record(engine), record(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM experiments WHERE id = :id"), {"id": dropped})
        left = conn.execute(text("SELECT experiment_id, count(*) FROM experiment_trials GROUP BY experiment_id"))
        assert dict(left.tuples().all()) == {kept: 4}


def test_postgresql_refuses_a_too_long_family_itself(fresh_postgres_db: str) -> None:
    """Behind the store's own check, the column refuses a value longer than it holds rather than truncating it."""
    engine = make_engine(fresh_postgres_db)
    migrate.upgrade(engine)
    experiment_id = record(engine)
    with pytest.raises(DataError, match="too long"), engine.begin() as conn:
        conn.execute(text("INSERT INTO experiment_trials (experiment_id, number, family, params, selected) "
                          "VALUES (:id, 9, :family, '{}', false)"), {"id": experiment_id, "family": "x" * 33})
    assert [t["number"] for t in get_experiment(engine, experiment_id)["trials"]] == [1, 2, 3, 4]
    engine.dispose()
