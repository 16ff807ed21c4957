"""One database and one bucket: KFP, the Feast server, the Bento service and the jobs all point at them,
and every secret reaches the pods through a Kubernetes Secret, never as plain text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from infra import kube
from infra.database import LOGINS, login_password
from infra.policy.rules import pod_spec
from infra.render import manifests, run_program
from tests.support.infra import SECRETS, find

PLATFORM_WORKLOADS = [
    ("Deployment", "aicash-inference"),
    ("Deployment", "aicash-feature-server"),
    ("CronJob", "aicash-drift-report"),
    ("CronJob", "aicash-health-check"),
    ("CronJob", "aicash-canary-judge"),
]


def _env(objs: list[dict[str, Any]], namespace: str, container: dict[str, Any]) -> dict[str, str]:
    """The environment a container sees: envFrom ConfigMaps and Secrets, then its own `env`."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            obj = find(objs, "ConfigMap", source["configMapRef"]["name"], namespace)
        else:
            obj = find(objs, "Secret", source["secretRef"]["name"], namespace)
        env.update(obj.get("data") or obj.get("stringData") or {})
    for entry in container.get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        value = find(objs, "Secret", ref["name"], namespace)["stringData"][ref["key"]] if ref else entry.get("value")
        env[entry["name"]] = value or ""
    return env


# Who each workload logs in as (infra.database.LOGINS): its own login, the owner only where DDL is done.
LOGIN_OF = {"aicash-inference": "aicash_inference", "aicash-feature-server": "aicash_inference",
            "aicash-drift-report": "aicash_monitor", "aicash-health-check": "aicash_monitor",
            "aicash-canary-judge": "aicash_monitor", "aicash-db-upgrade": "aicash"}


def _workloads(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    job = next(o for o in objs if o["kind"] == "Job" and o["metadata"]["name"].startswith("aicash-db-upgrade-"))
    return [find(objs, kind, name, "aicash") for kind, name in PLATFORM_WORKLOADS] + [job]


def test_every_platform_workload_sees_the_same_database_and_bucket(objects: list[dict[str, Any]], stack: str) -> None:
    seen = set()
    for obj in _workloads(objects):
        for container in pod_spec(obj)["containers"]:
            env = _env(objects, "aicash", container)
            parts = urlsplit(env["DATABASE_URL"])
            login = next(u for prefix, u in LOGIN_OF.items() if obj["metadata"]["name"].startswith(prefix))
            assert parts.username == login, obj["metadata"]["name"]
            owner = SECRETS["dbPassword"]
            assert unquote(parts.password or "") == (owner if login == "aicash" else login_password(owner, login))
            seen.add((parts.hostname, parts.port, parts.path, parts.query, env["S3_BUCKET"], env["USE_S3_STORAGE"],
                      env.get("S3_ENDPOINT_URL")))
    assert len(seen) == 1
    *_, query, bucket, use_s3, endpoint = seen.pop()
    assert use_s3 == "true"
    assert bucket == {"dev": "aicash-dev-models", "prod": "aicash-prod-models"}[stack]
    assert query == {"dev": "sslmode=disable", "prod": "sslmode=require"}[stack]
    assert (endpoint is None) == (stack == "prod")  # boto3 finds AWS itself; MinIO needs the endpoint


def test_kubeflow_pipelines_uses_the_platform_database_and_bucket(objects: list[dict[str, Any]], stack: str) -> None:
    platform = find(objects, "ConfigMap", kube.SETTINGS_CONFIGMAP, "aicash")["data"]
    database = urlsplit(find(objects, "Secret", kube.SETTINGS_SECRET, "aicash")["stringData"]["DATABASE_URL"])
    install = find(objects, "ConfigMap", "pipeline-install-config", "kubeflow")["data"]
    assert install["postgresHost"] == database.hostname
    assert install["postgresPort"] == str(database.port) == "5432"
    assert install["bucketName"] == platform["S3_BUCKET"]
    assert install["defaultPipelineRoot"] == f"s3://{platform['S3_BUCKET']}/pipelines"
    assert json.loads(install["postgresExtraParams"]) == {"sslmode": database.query.removeprefix("sslmode=")}
    credentials = find(objects, "Secret", "postgres-secret-extended", "kubeflow")["stringData"]
    assert credentials == {"username": database.username, "password": SECRETS["dbPassword"]}
    mlmd = find(objects, "ConfigMap", "metadata-postgres-db-parameters", "kubeflow")["data"]
    assert mlmd["MLMD_DB_HOST"] == database.hostname
    launcher = find(objects, "ConfigMap", "kfp-launcher", "kubeflow")["data"]
    assert launcher["defaultPipelineRoot"] == install["defaultPipelineRoot"]
    api = pod_spec(find(objects, "Deployment", "ml-pipeline", "kubeflow"))["containers"][0]
    api_env = {e["name"]: e["value"] for e in api["env"]}
    expected_host = "s3.eu-west-1.amazonaws.com" if stack == "prod" else "minio.aicash.svc.cluster.local"
    assert api_env["OBJECTSTORECONFIG_HOST"] == expected_host
    assert json.loads(launcher["providers"])["s3"]["default"]["endpoint"].startswith(expected_host)


def test_kfp_steps_get_the_same_settings_as_the_platform(objects: list[dict[str, Any]]) -> None:
    for kind in ("ConfigMap", "Secret"):
        name = kube.SETTINGS_CONFIGMAP if kind == "ConfigMap" else kube.SETTINGS_SECRET
        ours, kfps = (find(objects, kind, name, ns) for ns in ("aicash", "kubeflow"))
        key = "data" if kind == "ConfigMap" else "stringData"
        own_login = {"DATABASE_URL"}  # KFP's steps log in as the training login, not the owner
        assert {k: v for k, v in ours[key].items() if k not in own_login} == {
            k: v for k, v in kfps[key].items() if k not in own_login}
    kfp_url = urlsplit(find(objects, "Secret", kube.SETTINGS_SECRET, "kubeflow")["stringData"]["DATABASE_URL"])
    assert kfp_url.username == LOGINS["TRAINING_DATABASE_URL"][0]


def test_upstream_database_and_namespace_are_dropped_and_the_rest_labelled(objects: list[dict[str, Any]]) -> None:
    assert not [o for o in objects if o["metadata"].get("name") == "metadata-postgres-db"]
    assert len([o for o in objects if o["kind"] == "Namespace" and o["metadata"]["name"] == "kubeflow"]) == 1
    upstream = [o for o in objects if o["metadata"].get("labels", {}).get("application-crd-id")]
    assert upstream and all(o["metadata"]["labels"]["aicash.io/third-party"] == "kubeflow-pipelines" for o in upstream)
    grpc = pod_spec(find(objects, "Deployment", "metadata-grpc-deployment", "kubeflow"))
    assert grpc["initContainers"][0]["resources"]["limits"]["memory"]


def test_irsa_replaces_static_keys_on_aws(objects: list[dict[str, Any]], stack: str) -> None:
    secret = find(objects, "Secret", kube.SETTINGS_SECRET, "aicash")["stringData"]
    account = find(objects, "ServiceAccount", kube.SERVICE_ACCOUNT, "aicash")["metadata"]
    if stack == "prod":
        assert "AWS_SECRET_ACCESS_KEY" not in secret
        assert account["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
        pipeline_sa = find(objects, "ServiceAccount", "ml-pipeline", "kubeflow")["metadata"]
        assert "eks.amazonaws.com/role-arn" in pipeline_sa["annotations"]
    else:
        assert secret["AWS_SECRET_ACCESS_KEY"] == SECRETS["minioPassword"]
        assert not account.get("annotations")


def test_secrets_reach_pods_only_through_secret_objects(objects: list[dict[str, Any]]) -> None:
    logins = {login_password(SECRETS["dbPassword"], login) for login, _ in LOGINS.values()}
    secret_values = set(SECRETS.values()) | logins
    for obj in objects:
        if obj["kind"] == "Secret":
            continue
        text = json.dumps(obj)
        assert not [v for v in secret_values if v in text], obj["metadata"]
    for obj in _workloads(objects):
        for container in pod_spec(obj)["containers"]:
            assert {"secretRef": {"name": kube.SETTINGS_SECRET}} in container["envFrom"]
            # a workload's own login comes from a Secret too (secretKeyRef), never as a value
            assert not any(e["name"] in {"DATABASE_URL", "ADMIN_DATABASE_URL", "SMTP_PASSWORD"} and "value" in e
                           for e in container.get("env", []))


@pytest.mark.parametrize("name", ["SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_STARTTLS", "ALERT_EMAIL_FROM",
                                  "ALERT_EMAIL_TO", "MIN_TRAINING_SAMPLES", "MIN_ACCURACY", "MIN_WIN_RATE",
                                  "INFERENCE_API_URL", "AICASH_HOME",
                                  "KFP_HOST", "KFP_IMAGE", "FEAST_ONLINE_STORE", "RATE_LIMIT_BACKEND"])
def test_every_plain_setting_is_in_the_configmap(objects: list[dict[str, Any]], name: str) -> None:
    data = find(objects, "ConfigMap", kube.SETTINGS_CONFIGMAP, "aicash")["data"]
    assert data[name]
    assert name not in find(objects, "Secret", kube.SETTINGS_SECRET, "aicash")["stringData"]


def test_model_version_is_pinned_only_when_configured(objects: list[dict[str, Any]]) -> None:
    assert "MODEL_VERSION" not in find(objects, "ConfigMap", kube.SETTINGS_CONFIGMAP, "aicash")["data"]
    pinned = manifests(run_program("dev", overrides={"settings": json.dumps({"modelVersion": "v7"})}))
    assert find(pinned, "ConfigMap", kube.SETTINGS_CONFIGMAP, "aicash")["data"]["MODEL_VERSION"] == "v7"


def test_feature_server_serves_the_platform_store(objects: list[dict[str, Any]]) -> None:
    [feast] = pod_spec(find(objects, "Deployment", "aicash-feature-server", "aicash"))["containers"]
    script = feast["command"][-1]
    assert feast["command"][:2] == ["sh", "-c"]
    assert script.startswith('eval "$(aicash features env)" && exec feast serve') and "--port 6566" in script
    assert feast["readinessProbe"]["httpGet"]["path"] == "/health"


def test_training_runs_go_to_the_cluster_kfp_with_the_release_image(objects: list[dict[str, Any]], stack: str) -> None:
    """KFP_HOST and KFP_IMAGE reach every platform workload, so POST /train and `monitor drift --retrain`
    submit to the cluster's KFP (not the local runner) with the image of this release."""
    platform_image = {"dev": "localhost:5001/aicash-platform:0.1.0", "prod": "ghcr.io/aicash/aicash-platform:0.1.0"}
    for obj in _workloads(objects):
        [container] = pod_spec(obj)["containers"]
        env = _env(objects, "aicash", container)
        assert env["KFP_HOST"] == "http://ml-pipeline.kubeflow.svc.cluster.local:8888", obj["metadata"]["name"]
        assert env["KFP_IMAGE"] == platform_image[stack]
    # the jobs run that very image: a run on KFP uses the code of the release that submitted it
    drift = pod_spec(find(objects, "CronJob", "aicash-drift-report", "aicash"))["containers"][0]
    assert drift["image"] == platform_image[stack]
    pinned = manifests(run_program("prod", overrides={"imageTag": "2.0.1"}))
    assert find(pinned, "ConfigMap", kube.SETTINGS_CONFIGMAP, "aicash")["data"]["KFP_IMAGE"].endswith(":2.0.1")


def test_the_settings_are_valid_for_aicash_itself(
    objects: list[dict[str, Any]], stack: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the pods get loads into `aicash.settings.Settings` as intended: cluster mode, KFP in the cluster."""
    from aicash.settings import Settings, load_settings

    env = {
        **find(objects, "ConfigMap", kube.SETTINGS_CONFIGMAP, "aicash")["data"],
        **find(objects, "Secret", kube.SETTINGS_SECRET, "aicash")["stringData"],
    }
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(Path(__file__).parent)  # no .env file here
    settings = load_settings()
    assert settings.mode == "cluster" and settings.use_s3_storage
    assert settings.kfp_host == env["KFP_HOST"] and settings.kfp_image == env["KFP_IMAGE"]
    assert settings.rate_limit_backend == "redis" and settings.redis_url is not None  # limits across replicas


def test_feast_online_store_is_a_password_protected_redis(objects: list[dict[str, Any]], stack: str) -> None:
    from aicash.settings import Settings
    from features.config import config_name

    data = find(objects, "ConfigMap", kube.SETTINGS_CONFIGMAP, "aicash")["data"]
    secret = find(objects, "Secret", kube.SETTINGS_SECRET, "aicash")["stringData"]
    assert data["FEAST_ONLINE_STORE"] == "redis" and "REDIS_URL" not in data
    assert data["RATE_LIMIT_BACKEND"] == "redis"  # the same Redis holds the per-key rate-limit buckets
    url = urlsplit(secret["REDIS_URL"])
    assert (url.hostname, url.port, unquote(url.password or "")) == (
        "redis.aicash.svc.cluster.local", 6379, SECRETS["redisPassword"])
    # the pods' environment is a valid aicash configuration that selects the Redis feature store
    settings = Settings(**{k.lower(): v for k, v in {**data, **secret}.items() if k.lower() in Settings.model_fields})
    assert config_name(settings) == "cluster-redis"

    redis = pod_spec(find(objects, "StatefulSet", "redis", "aicash"))["containers"][0]
    assert "$(REDIS_PASSWORD)" in redis["args"] and "--appendonly" in redis["args"]
    assert redis["env"] == [{"name": "REDIS_PASSWORD", "valueFrom": {
        "secretKeyRef": {"name": "redis-credentials", "key": "REDIS_PASSWORD"}}}]
    assert redis["readinessProbe"]["exec"] and redis["livenessProbe"]["exec"]
    ingress = find(objects, "NetworkPolicy", "redis-from-platform", "aicash")["spec"]
    assert ingress["podSelector"]["matchLabels"] == kube.selector("redis")
    assert ingress["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 6379}]


def test_the_online_store_can_stay_in_postgres() -> None:
    objs = manifests(run_program("dev", overrides={"onlineStore": json.dumps({"type": "postgres"})}))
    data = find(objs, "ConfigMap", kube.SETTINGS_CONFIGMAP, "aicash")["data"]
    assert (data["FEAST_ONLINE_STORE"], data["RATE_LIMIT_BACKEND"]) == ("postgres", "memory")  # no Redis to share
    assert "REDIS_URL" not in find(objs, "Secret", kube.SETTINGS_SECRET, "aicash")["stringData"]
    assert not [o for o in objs if o["metadata"].get("name") in {"redis", "redis-from-platform"}]
