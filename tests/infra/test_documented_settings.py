"""Every setting the docs tell a user to set can be set through the stacks: each upper-case name in README.md and
docs/**/*.md that is an aicash setting is rendered from the stack's config into the settings ConfigMap or Secret.

The stack is run once with every such key given a value no default has, and those values must be what the pods
get; the frontend's origin of `Pulumi.prod.yaml` must reach the BentoML CORS options the service builds."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from aicash.settings import Settings
from infra import kube
from infra.config import PlatformSettings
from infra.policy.rules import pod_spec
from infra.render import manifests, run_program
from tests.support.docs import DOCS
from tests.support.infra import find

ROOT = Path(__file__).resolve().parents[2]
# The docs say no code reads these and to unset them: nothing for a stack to set.
DEPRECATED = {"ML_API_URL", "TRAINING_API_URL"}

# `aicash:settings`: a value for each field that no default has, and what the pods must get for it.
SETTINGS = {
    "modelVersion": ("v20261206-abc", "v20261206-abc"),
    "minTrainingSamples": (321, "321"),
    "minAccuracy": (0.61, "0.61"),
    "minWinRate": (0.51, "0.51"),
    "maxPbo": (0.35, "0.35"),
    "trainingTimeoutSeconds": (3600, "3600"),
    "minLiveWinRate": (0.57, "0.57"),
    "minLiveConfidence": (0.72, "0.72"),
    "rateLimitPerMinute": (777, "777"),
    "corsAllowOrigins": (["https://app.test.example", "https://admin.test.example"],
                         "https://app.test.example,https://admin.test.example"),
    "predictionCacheTtlSeconds": (2.5, "2.5"),
    "maxRequestBytes": (65536, "65536"),
    "registryReloadSeconds": (30, "30"),
    "maxFeatureAgeBars": (5, "5"),
    "featureAgeGraceSeconds": (120, "120"),
    "refuseStaleFeatures": (True, "true"),
}
SMTP = {"host": "smtp.test.example", "port": 2525, "username": "alerts-test", "starttls": False,
        "from": "alerts@test.example", "to": "ml@test.example,ops@test.example"}
OVERRIDES = {"settings": json.dumps({key: value for key, (value, _) in SETTINGS.items()}),
             "smtp": json.dumps(SMTP), "storage": json.dumps({"bucket": "aicash-test-models"}),
             "host": "signals.test.example", "platformImage": "registry.test/aicash-platform", "imageTag": "9.8.7"}
SECRETS = {"dbPassword": "db-test-Pa55", "smtpPassword": "smtp-test-Pa55", "minioPassword": "minio-test-Pa55",
           "redisPassword": "redis-test-Pa55"}
# Set by a stack key other than `aicash:settings`: the ConfigMap's value for OVERRIDES and SECRETS.
FROM_STACK_KEYS = {
    "SMTP_HOST": "smtp.test.example", "SMTP_PORT": "2525", "SMTP_USERNAME": "alerts-test", "SMTP_STARTTLS": "false",
    "ALERT_EMAIL_FROM": "alerts@test.example", "ALERT_EMAIL_TO": "ml@test.example,ops@test.example",
    "S3_BUCKET": "aicash-test-models", "INFERENCE_API_URL": "https://signals.test.example",
    "KFP_IMAGE": "registry.test/aicash-platform:9.8.7",
}
# Decided by the stack's shape rather than one key (documented in docs/platform-team.md): present in every render.
DERIVED = {
    "AICASH_HOME": "the pods' writable folder",
    "USE_S3_STORAGE": "always true: the bucket (S3 or MinIO) holds the models",
    "S3_ENDPOINT_URL": "MinIO's Service on dev; unset on AWS (boto3 finds S3)",
    "KFP_HOST": "the KFP API of aicash:kfp.namespace",
    "FEAST_ONLINE_STORE": "aicash:onlineStore.type",
    "RATE_LIMIT_BACKEND": "redis with aicash:onlineStore.type redis (the buckets shared by the replicas)",
}
# The secret settings come from the stack's secrets (aicash:dbPassword, smtpPassword, redisPassword) into a Secret.
IN_SECRET = {name.upper() for name, f in Settings.model_fields.items() if "SecretStr" in str(f.annotation)}


def documented_settings() -> set[str]:
    """The upper-case names in the docs that are aicash settings, less the deprecated ones."""
    names = {name.upper() for name in Settings.model_fields}
    text = "\n".join(path.read_text(encoding="utf-8") for path in DOCS)
    return {word for word in re.findall(r"\b[A-Z][A-Z0-9_]+\b", text) if word in names} - DEPRECATED


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@pytest.fixture(scope="module")
def configured() -> list[dict[str, Any]]:
    """The dev stack with every documented setting given a non-default value through its stack config."""
    return manifests(run_program("dev", overrides=OVERRIDES, secrets=SECRETS), redacted=False)


def settings_objects(objects: list[dict[str, Any]], namespace: str = "aicash") -> tuple[dict[str, str], dict[str, str]]:
    return (find(objects, "ConfigMap", kube.SETTINGS_CONFIGMAP, namespace)["data"],
            find(objects, "Secret", kube.SETTINGS_SECRET, namespace)["stringData"])


def secret_keys(objects: list[dict[str, Any]], namespace: str = "aicash") -> set[str]:
    """The keys of every Secret in `namespace`: the settings Secret and the workloads' own."""
    return {key for o in objects if o["kind"] == "Secret" and o["metadata"].get("namespace") == namespace
            for key in {**(o.get("data") or {}), **(o.get("stringData") or {})}}


def test_every_documented_setting_has_a_way_in_through_the_stack() -> None:
    documented = documented_settings()
    assert {"CORS_ALLOW_ORIGINS", "RATE_LIMIT_PER_MINUTE", "TRAINING_TIMEOUT_SECONDS", "MIN_LIVE_WIN_RATE",
            "MIN_LIVE_CONFIDENCE"} <= documented
    stack_settings = {f.name.upper() for f in fields(PlatformSettings)}
    accounted = stack_settings | set(FROM_STACK_KEYS) | set(DERIVED) | IN_SECRET
    assert documented - accounted == set(), "documented, but no stack config sets it"
    assert {camel(name.lower()) for name in stack_settings} == set(SETTINGS)  # the test gives each a value


def test_each_one_is_rendered_from_stack_config(configured: list[dict[str, Any]]) -> None:
    data, secret = settings_objects(configured)
    for key, (_, rendered) in SETTINGS.items():
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", key).upper()
        assert data[name] == rendered, name
    for name, rendered in FROM_STACK_KEYS.items():
        assert data[name] == rendered, name
    for name in DERIVED:
        assert data[name], name
    assert secret["SMTP_PASSWORD"] == SECRETS["smtpPassword"]
    assert unquote(urlsplit(secret["DATABASE_URL"]).password or "") == SECRETS["dbPassword"]
    assert unquote(urlsplit(secret["REDIS_URL"]).password or "") == SECRETS["redisPassword"]
    in_secrets = secret_keys(configured)
    for name in documented_settings():
        assert (name in data) != (name in in_secrets), f"{name}: in the ConfigMap or in a Secret, not both"
    kfp_data, kfp_secret = settings_objects(configured, "kubeflow")
    # KFP's steps see the same, but log in as the training login (infra.database.LOGINS), not the owner
    assert kfp_data == data and {k: v for k, v in kfp_secret.items() if k != "DATABASE_URL"} == {
        k: v for k, v in secret.items() if k != "DATABASE_URL"}
    assert urlsplit(kfp_secret["DATABASE_URL"]).username == "aicash_pipelines"


def test_the_configured_values_are_valid_aicash_settings(configured: list[dict[str, Any]],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    data, secret = settings_objects(configured)
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(Path(__file__).parent)  # no .env here
    settings = Settings(**{k.lower(): v for k, v in {**data, **secret}.items() if k.lower() in Settings.model_fields})
    assert (settings.rate_limit_per_minute, settings.training_timeout_seconds) == (777, 3600)
    assert (settings.min_live_win_rate, settings.min_live_confidence) == (0.57, 0.72)
    assert settings.cors_origins == ["https://app.test.example", "https://admin.test.example"]
    assert settings.refuse_stale_features is True and settings.model_version == "v20261206-abc"


def test_unset_stack_settings_mean_aicash_defaults() -> None:
    """A key left out of `aicash:settings` renders nothing or aicash's own default, never a different one."""
    for f in fields(PlatformSettings):
        default = Settings.model_fields[f.name].default
        assert f.default == default or (f.default == "" and default in ("", None)), f.name


def test_prod_serves_its_frontend_origin(objects: list[dict[str, Any]], stack: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The stack file's corsAllowOrigins reaches the ConfigMap the inference pods read, and from there the BentoML
    CORS options the service is built with (tests/bentos/test_service_http.py::test_cors_preflight serves those
    options: a preflight from the origin passes, one from another origin is refused)."""
    from bentos.wiring import service_config

    stack_file = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8"))
    origin = stack_file["config"]["aicash:settings"]["corsAllowOrigins"]
    assert origin == {"prod": "https://app.aicash.example.com", "dev": "http://localhost:3000"}[stack]
    data, secret = settings_objects(objects)
    assert data["CORS_ALLOW_ORIGINS"] == origin and data["RATE_LIMIT_PER_MINUTE"] == "1200"
    [container] = pod_spec(find(objects, "Deployment", "aicash-inference", "aicash"))["containers"]
    assert {"configMapRef": {"name": kube.SETTINGS_CONFIGMAP}} in container["envFrom"]
    assert not any(e["name"] == "CORS_ALLOW_ORIGINS" for e in container.get("env", []))  # nothing overrides it
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(Path(__file__).parent)
    served = Settings(**{k.lower(): v for k, v in {**data, **secret}.items() if k.lower() in Settings.model_fields})
    cors = service_config(served)["http"]["cors"]
    assert cors["enabled"] is True and cors["access_control_allow_origins"] == [origin]
