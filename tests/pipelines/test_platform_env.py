"""Every task of every compiled pipeline, those inside `dsl.If` branches and the ParallelFor included, takes the
settings ConfigMap and Secret of KFP's namespace as environment variables, with the keys of `pipelines.platform_env`
(KFP's `configMapAsEnv`/`secretAsEnv` in the IR's platform spec). The committed IR is what the cluster runs."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from pipelines import platform_env, runner


def ir_documents(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    spec, platform = yaml.safe_load_all((runner.COMPILED_DIR / f"{name}.yaml").read_text())
    return spec, platform


def task_executors(spec: dict[str, Any], component: dict[str, Any] | None = None) -> dict[str, str]:
    """Each container task of the pipeline, nested DAGs (loops, conditions) included: its name -> its executor."""
    found: dict[str, str] = {}
    for name, task in (component or spec["root"])["dag"]["tasks"].items():
        child = spec["components"][task["componentRef"]["name"]]
        if "dag" in child:
            found.update(task_executors(spec, child))
        else:
            found[name] = child["executorLabel"]
    return found


def taken(entries: list[dict[str, Any]], name_field: str, key_field: str) -> dict[tuple[str, bool], list[str]]:
    """(object name, optional) -> the keys taken, each checked to keep its own name as the variable."""
    keys: dict[tuple[str, bool], list[str]] = {}
    for entry in entries:
        assert all(pair["envVar"] == pair[key_field] for pair in entry["keyToEnv"])
        keys.setdefault((entry[name_field], entry.get("optional", False)), []).extend(
            pair[key_field] for pair in entry["keyToEnv"])
    return keys


EXPECTED_TASKS = {
    "lstm-training": {"materialize-features", "build-training-set", "merge-training-sets", "train", "evaluate",
                      "gate", "register", "register-2"},
    "signal-weights": {"optimize-weights", "save-weights", "optimize-weights-2", "save-weights-2"},
    "model-search": {"plan-trials", "materialize-features", "build-training-set", "merge-training-sets", "run-trial",
                     "select-and-train", "evaluate", "gate", "register", "register-2"},
}


@pytest.mark.parametrize("name", sorted(runner.PIPELINES))
def test_every_task_takes_the_settings_configmap_and_secret(name: str) -> None:
    spec, platform = ir_documents(name)
    executors = task_executors(spec)
    assert set(executors) == EXPECTED_TASKS[name]
    configs = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    for task, executor in executors.items():
        config = configs[executor]
        assert taken(config["configMapAsEnv"], "configMapName", "configMapKey") == {
            (platform_env.SETTINGS_CONFIGMAP, False): list(platform_env.CONFIG_KEYS),
            (platform_env.SETTINGS_CONFIGMAP, True): list(platform_env.OPTIONAL_CONFIG_KEYS),
        }, task
        assert taken(config["secretAsEnv"], "secretName", "secretKey") == {
            (platform_env.SETTINGS_SECRET, False): list(platform_env.SECRET_KEYS),
            (platform_env.SETTINGS_SECRET, True): list(platform_env.OPTIONAL_SECRET_KEYS),
        }, task


def test_the_loop_over_series_is_there_and_its_task_takes_the_settings() -> None:
    spec, _ = ir_documents("lstm-training")
    loop = spec["components"][spec["root"]["dag"]["tasks"]["for-loop-1"]["componentRef"]["name"]]
    assert set(loop["dag"]["tasks"]) == {"build-training-set"}  # checked by the test above like every task


def test_the_key_lists_do_not_overlap() -> None:
    config = [*platform_env.CONFIG_KEYS, *platform_env.OPTIONAL_CONFIG_KEYS]
    secret = [*platform_env.SECRET_KEYS, *platform_env.OPTIONAL_SECRET_KEYS]
    assert len(set(config)) == len(config) and len(set(secret)) == len(secret)
    assert not set(config) & set(secret)  # nothing secret is in the ConfigMap
