"""The search space as data: what a space file may say, the errors that name the field and the fix, seeded random
sampling that repeats itself, and the grid."""

from __future__ import annotations

import json

import pytest

from aicash.training.config import FAMILY_PARAMETERS, TrainingConfig
from aicash.training.search_space import (
    Choice,
    Range,
    SearchSpaceError,
    TrialSpec,
    load_space,
    plan_from_text,
    plan_trials,
    space_json,
)
from pipelines.model_search import SPACE_FILE

SPACE = """
sampler: random
families:
  lstm:
    hidden_size: [8, 16, 32]
    learning_rate: {low: 1e-3, high: 1e-2, log: true}   # YAML reads 1e-3 as text: taken as the number
    max_epochs: 3
  lightgbm:
    num_leaves: {low: 4, high: 31}
  linear:
"""


def drawn(specs: list[TrialSpec]) -> list[tuple[int, str, dict]]:
    return [(s.number, s.family, s.params) for s in specs]


def test_a_space_parses_lists_ranges_and_constants_with_the_fields_types() -> None:
    space = load_space(SPACE)
    assert space.sampler == "random" and list(space.families) == ["lstm", "lightgbm", "linear"]
    lstm = space.families["lstm"]
    assert lstm["hidden_size"] == Choice((8, 16, 32)) and lstm["max_epochs"] == Choice((3,))
    assert lstm["learning_rate"] == Range(0.001, 0.01, True, float)
    assert space.families["lightgbm"]["num_leaves"] == Range(4, 31, False, int)
    assert space.families["linear"] == {}


def test_random_sampling_is_seeded_within_bounds_and_builds_each_trials_config() -> None:
    base = TrainingConfig(n_folds=2, horizon_bars=2)
    first = plan_trials(load_space(SPACE), 8, seed=3, base=base)
    assert drawn(first) == drawn(plan_trials(load_space(SPACE), 8, seed=3, base=base))
    assert drawn(first) != drawn(plan_trials(load_space(SPACE), 8, seed=4, base=base))
    assert [s.number for s in first] == list(range(1, 9))
    assert len({json.dumps([s.family, s.params], sort_keys=True) for s in first}) == 8  # no trial repeated
    for spec in first:
        assert spec.config.family == spec.family
        assert (spec.config.n_folds, spec.config.horizon_bars) == (2, 2)  # the base's data settings, shared
        assert set(spec.params) <= set(FAMILY_PARAMETERS[spec.family])
        for name, value in spec.params.items():
            assert getattr(spec.config, name) == value
        if spec.family == "lstm":
            assert spec.params["hidden_size"] in (8, 16, 32) and spec.params["max_epochs"] == 3
            assert 0.001 <= spec.params["learning_rate"] <= 0.01
        if spec.family == "lightgbm":
            assert isinstance(spec.params["num_leaves"], int) and 4 <= spec.params["num_leaves"] <= 31
    assert {s.family for s in first} == {"lstm", "lightgbm", "linear"}
    again = TrialSpec.from_json(first[0].to_json())  # what a KFP task receives
    assert again == first[0]


def test_a_small_space_gives_its_distinct_configurations_once() -> None:
    specs = plan_trials(load_space("families: {linear: {}, lstm: {hidden_size: [8, 16]}}"), 10, seed=0)
    assert sorted((s.family, s.params.get("hidden_size", 0)) for s in specs) == [
        ("linear", 0), ("lstm", 8), ("lstm", 16)]


def test_the_grid_enumerates_every_combination_capped_by_trials() -> None:
    grid = load_space("sampler: grid\nfamilies:\n  lstm: {hidden_size: [8, 16], num_layers: [1, 2]}\n"
                      "  linear: {learning_rate: 0.01}\n")
    every = plan_trials(grid, 16)
    assert drawn(every) == [
        (1, "lstm", {"hidden_size": 8, "num_layers": 1}), (2, "lstm", {"hidden_size": 8, "num_layers": 2}),
        (3, "lstm", {"hidden_size": 16, "num_layers": 1}), (4, "lstm", {"hidden_size": 16, "num_layers": 2}),
        (5, "linear", {"learning_rate": 0.01})]
    three = plan_trials(grid, 3)  # evenly spread over the grid: both ends kept
    assert [(s.family, s.params) for s in three] == [
        ("lstm", {"hidden_size": 8, "num_layers": 1}), ("lstm", {"hidden_size": 16, "num_layers": 1}),
        ("linear", {"learning_rate": 0.01})]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("families: {xgboost: {}}", ["unknown family 'xgboost'", "lstm, gru, tcn, linear, lightgbm"]),
        ("families: {lstm: {kernel_size: [2]}}", ["lstm.kernel_size is not a parameter of the lstm family",
                                                 "hidden_size"]),
        ("families: {lstm: {n_folds: [2, 3]}}", ["lstm.n_folds is not a parameter", "--config"]),
        ("families: {}", ["empty", "families:"]),
        ("sampler: random", ["empty"]),
        ("", ["families:"]),
        ("families: {lstm: {hidden_size: [0, 8]}}", ["lstm.hidden_size value 0", "greater than or equal to 1"]),
        ("families: {lstm: {dropout: {low: 0.1, high: 1.5}}}", ["lstm.dropout high 1.5", "less than 1"]),
        ("families: {lightgbm: {num_leaves: {low: 40, high: 8}}}", ["lightgbm.num_leaves has low 40 >= high 8"]),
        ("families: {lstm: {dropout: {low: 0.0, high: 0.5, log: true}}}", ["dropout is on a log scale", "above 0"]),
        ("families: {lstm: {learning_rate: {low: 0.1}}}", ["lstm.learning_rate is a range", "`high`"]),
        ("families: {lstm: {hidden_size: []}}", ["lstm.hidden_size is an empty list"]),
        ("sampler: bayes\nfamilies: {lstm: {}}", ["sampler 'bayes' is unknown", "random, grid"]),
        ("families: {lstm: {}}\nfolds: 3", ["unknown key(s) folds"]),
        ("sampler: grid\nfamilies: {linear: {learning_rate: {low: 0.001, high: 0.1}}}",
         ["linear.learning_rate is a range, which grid sampling cannot enumerate", "sampler: random"]),
    ],
)
def test_a_bad_space_is_refused_naming_the_field_and_the_fix(text: str, names: list[str]) -> None:
    with pytest.raises(SearchSpaceError) as refused:
        plan_trials(load_space(text), 4)
    for name in names:
        assert name in str(refused.value), str(refused.value)


@pytest.mark.parametrize(("trials", "seed", "name"), [(0, 0, "trials must be at least 1 (--trials)"),
                                                      (-3, 0, "--trials"), (4, -1, "seed must be 0 or more")])
def test_trials_and_seed_are_checked(trials: int, seed: int, name: str) -> None:
    with pytest.raises(SearchSpaceError, match=name.replace("(", r"\(").replace(")", r"\)")):
        plan_trials(load_space(SPACE), trials, seed)


def test_the_default_space_file_is_valid_and_travels_as_one_line_of_json() -> None:
    text = space_json(SPACE_FILE)
    assert "\n" not in text  # a compiled KFP pipeline cannot hold a multi-line default
    space = load_space(text)
    assert set(space.families) == set(FAMILY_PARAMETERS)  # the whole zoo
    specs = plan_from_text(text, 16, seed=0, config_json='{"n_folds": 3}')
    assert len(specs) == 16 and {s.config.n_folds for s in specs} == {3}
    assert len({s.family for s in specs}) >= 4
