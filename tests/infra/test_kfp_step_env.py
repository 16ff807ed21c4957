"""What a KFP step sees in each stack: the committed IR's `configMapAsEnv`/`secretAsEnv` resolved, as the kubelet
would, against the settings ConfigMap and Secret the stack renders into KFP's namespace. The step's environment is
exactly what those objects hold (no key missed, none lacking), and its DATABASE_URL is the training login."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from infra import kube
from infra.config import PlatformSettings as SettingsValues
from infra.database import LOGINS
from infra.platform_settings import PlatformSettingsArgs, check_step_keys
from pipelines import platform_env, runner
from tests.support.infra import find

KFP_NAMESPACE = "kubeflow"


def step_env(executor: dict[str, Any], objects: list[dict[str, Any]]) -> dict[str, str]:
    """The variables the step's container gets: a required key missing from its object would keep the pod from
    starting (a failure here); an optional one missing is left unset."""
    env: dict[str, str] = {}
    sources = [("configMapAsEnv", "ConfigMap", "configMapName", "configMapKey", "data"),
               ("secretAsEnv", "Secret", "secretName", "secretKey", "stringData")]
    for field, kind, name_field, key_field, data_field in sources:
        for entry in executor[field]:
            data = find(objects, kind, entry[name_field], KFP_NAMESPACE)[data_field]
            for pair in entry["keyToEnv"]:
                if pair[key_field] in data:
                    env[pair["envVar"]] = data[pair[key_field]]
                else:
                    assert entry.get("optional"), f"{kind} {entry[name_field]} has no {pair[key_field]}"
    return env


@pytest.mark.parametrize("pipeline", sorted(runner.PIPELINES))
def test_each_step_sees_exactly_the_settings_of_kfps_namespace(
    objects: list[dict[str, Any]], stack: str, pipeline: str
) -> None:
    _, platform = yaml.safe_load_all((runner.COMPILED_DIR / f"{pipeline}.yaml").read_text())
    held = {**find(objects, "ConfigMap", kube.SETTINGS_CONFIGMAP, KFP_NAMESPACE)["data"],
            **find(objects, "Secret", kube.SETTINGS_SECRET, KFP_NAMESPACE)["stringData"]}
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert executors
    for name, executor in executors.items():
        env = step_env(executor, objects)
        assert env == held, f"{stack} {pipeline} {name}"
        assert urlsplit(env["DATABASE_URL"]).username == LOGINS["TRAINING_DATABASE_URL"][0] == "aicash_pipelines"
        assert env["USE_S3_STORAGE"] == "true" and env["S3_BUCKET"]


def test_the_settings_names_are_the_steps() -> None:
    assert (kube.SETTINGS_CONFIGMAP, kube.SETTINGS_SECRET) == (
        platform_env.SETTINGS_CONFIGMAP, platform_env.SETTINGS_SECRET)


def _args(**overrides: Any) -> PlatformSettingsArgs:
    base: dict[str, Any] = {"namespaces": (KFP_NAMESPACE,), "database_url": "postgresql://u:p@db/aicash",
                            "bucket": "b", "public_url": "https://api.example.com", "smtp_password": "pw"}
    return PlatformSettingsArgs(**{**base, **overrides})


def test_a_stack_with_the_optional_settings_passes_the_check() -> None:
    check_step_keys(_args(values=SettingsValues(model_version="3", cors_allow_origins="https://app.example.com"),
                          s3_endpoint_url="http://minio:9000", aws_region="eu-west-1", kfp_host="http://kfp",
                          kfp_image="img:1", redis_url="redis://r", access_key_id="k", secret_access_key="s"),
                    KFP_NAMESPACE)


def test_a_setting_the_steps_do_not_take_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from infra import platform_settings

    plain = platform_settings.plain_env
    monkeypatch.setattr(platform_settings, "plain_env", lambda args: {**plain(args), "NEW_SETTING": "x"})
    with pytest.raises(ValueError, match="ConfigMap not declared NEW_SETTING"):
        check_step_keys(_args(), KFP_NAMESPACE)
    monkeypatch.setattr(platform_settings, "plain_env",
                        lambda args: {k: v for k, v in plain(args).items() if k != "S3_BUCKET"})
    with pytest.raises(ValueError, match="ConfigMap missing S3_BUCKET"):
        check_step_keys(_args(), KFP_NAMESPACE)
