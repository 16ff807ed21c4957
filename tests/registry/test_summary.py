"""What `GET /models` says of a registered version (`aicash.registry.summary`), and the reserved version alias."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from aicash.registry import PREVIOUS_VERSION, RegistryError, get_model
from aicash.registry.summary import directional_accuracy, evaluation, training_data, version_summary
from tests.support.guide import CONFUSION, START, register, trainer_metrics

END = START + timedelta(hours=200)


def test_evaluation_reads_the_trainers_aggregate_figures_and_its_search() -> None:
    figures = evaluation(trainer_metrics(END))
    assert figures == {"accuracy": 0.64, "directional_accuracy": 0.61, "win_rate": 0.56, "trades": 90,
                       "sharpe_after_costs": 1.3, "average_confidence": 0.71, "information_coefficient": 0.04,
                       "trials": 1, "deflated_sharpe": 0.97, "pbo": None}
    searched = trainer_metrics(END)
    searched["search"] |= {"trials": 16, "pbo": {"probability": 0.2, "splits": 12870, "n_trials": 16, "n_blocks": 16}}
    assert (evaluation(searched)["trials"], evaluation(searched)["pbo"]) == (16, 0.2)


def test_a_version_registered_before_the_trainer_reported_direction_and_search() -> None:
    """Its directional accuracy comes from the confusion matrix; IC, trials, DSR and PBO are null."""
    older = trainer_metrics(END)
    del older["search"]
    for key in ("directional_accuracy", "information_coefficient"):
        del older["aggregate"]["model"][key]
    figures = evaluation(older)
    assert figures["directional_accuracy"] == pytest.approx(70 / 90)
    assert [figures[k] for k in ("information_coefficient", "trials", "deflated_sharpe", "pbo")] == [None] * 4
    silent = trainer_metrics(END)
    silent["aggregate"]["model"]["directional_accuracy"] = None  # no trades: not the confusion's figure
    assert evaluation(silent)["directional_accuracy"] is None


def test_missing_figures_are_null_never_invented() -> None:
    """A version registered without aggregate figures (or before average confidence existed) reports nulls."""
    assert set(evaluation({"aggregate": {}}).values()) == {None}
    older = trainer_metrics(END)
    del older["aggregate"]["model"]["average_confidence"]
    older["aggregate"]["model"]["win_rate"] = None  # no trade
    figures = evaluation(older)
    assert figures["average_confidence"] is None and figures["win_rate"] is None and figures["accuracy"] == 0.64
    assert evaluation({"aggregate": {"model": {"accuracy": float("nan"), "trades": True}}})["accuracy"] is None


def test_directional_accuracy_counts_only_directional_calls_on_directional_moves() -> None:
    assert directional_accuracy(CONFUSION) == pytest.approx((30 + 40) / (30 + 10 + 10 + 40))
    assert directional_accuracy([[0, 5, 0], [0, 9, 0], [0, 5, 0]]) is None  # never a direction
    assert directional_accuracy("not a matrix") is None


def test_training_data_range() -> None:
    data = training_data(trainer_metrics(END))
    assert data is not None and data.series == ["EURUSD/1h"] and data.first == START and data.last == END
    assert data.to_dict()["last"] == END.isoformat()
    assert training_data({"aggregate": {}}) is None


def test_version_summary(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    register(engine, tmp_path, "v1", trainer_metrics(END), approved=False)
    view = version_summary(get_model(engine, "v1"))
    assert view["status"] == "rejected" and view["traffic_percentage"] == 0.0
    assert view["gate"] == {"passed": False, "reasons": ["failed: test"]}
    assert view["metrics"]["average_confidence"] == 0.71 and view["training_data"]["series"] == ["EURUSD/1h"]
    assert view["created_at"].startswith(str(get_model(engine, "v1").created_at.date()))


def test_the_alias_is_no_version_name(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RegistryError, match="alias of the previous production version"):
        register(engine, tmp_path, PREVIOUS_VERSION, trainer_metrics(END))


def test_list_models_newest_first_up_to_a_limit(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from aicash.registry import list_models

    for version in ("v1", "v2", "v3"):
        register(engine, tmp_path, version, trainer_metrics(END))
    assert [r.version for r in list_models(engine, limit=2)] == ["v3", "v2"]
    assert len(list_models(engine)) == 3
