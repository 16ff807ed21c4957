"""`infra.render`: every object valid for Kubernetes 1.30, integers as integers, no secret in the output."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from infra.render import (
    REDACTED,
    SECRET_SIG,
    RecordingMocks,
    is_kubernetes_object,
    manifests,
    placeholder,
    redact,
    render,
    stack_config,
    unwrap,
)
from tests.support.infra import SECRETS


def _floats(value: Any) -> list[float]:
    if isinstance(value, dict):
        return [f for item in value.values() for f in _floats(item)]
    if isinstance(value, list):
        return [f for item in value for f in _floats(item)]
    return [value] if isinstance(value, float) else []


def test_every_object_is_valid_kubernetes_1_30(program: RecordingMocks) -> None:
    objs = manifests(program)
    kinds = {o["kind"] for o in objs}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Ingress"} <= kinds
    assert {"CronJob", "Job", "NetworkPolicy", "Secret", "ConfigMap", "Namespace"} <= kinds
    for obj in objs:
        kubernetes_validate.validate(obj, "1.30", strict=True)


def test_validation_is_strict_enough_to_fail() -> None:
    bad = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}, "datta": {"a": "b"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.30", strict=True)


def test_numbers_come_out_as_integers(program: RecordingMocks) -> None:
    objs = manifests(program)
    assert not [f for obj in objs for f in _floats(obj)]
    hpa = next(o for o in objs if o["kind"] == "HorizontalPodAutoscaler")
    assert isinstance(hpa["spec"]["minReplicas"], int)


def test_unwrap_and_redact_handle_pulumi_secrets() -> None:
    wrapped = {"a": {SECRET_SIG: "1b47061264138c4ac30d75fd1eb44270", "value": "hunter2"}, "n": [3000.0, 0.5]}
    assert unwrap(wrapped) == {"a": "hunter2", "n": [3000, 0.5]}
    assert redact(wrapped) == {"a": REDACTED, "n": [3000, 0.5]}


def test_render_writes_one_file_per_object_without_secrets(tmp_path: Path) -> None:
    result = render("dev", tmp_path, secrets=SECRETS)
    files = sorted(tmp_path.glob("*.yaml"))
    assert files == sorted(result.files) and len(files) > 25
    text = ""
    for path in files:
        docs = list(yaml.safe_load_all(path.read_text()))
        assert len(docs) == 1
        text += path.read_text()
        kubernetes_validate.validate(docs[0], "1.30", strict=True)
    for value in SECRETS.values():
        assert value not in text
        assert json.dumps(value)[1:-1] not in text
    assert "Pa55" not in text  # not even the URL-encoded password inside DATABASE_URL
    secret = yaml.safe_load((tmp_path / "secret_aicash_aicash-secrets.yaml").read_text())
    assert set(secret["stringData"]) >= {"DATABASE_URL", "SMTP_PASSWORD", "AWS_SECRET_ACCESS_KEY"}
    assert set(secret["stringData"].values()) == {REDACTED}
    assert any("kubeflow/pipelines" in item for item in result.not_expanded)


def test_stack_config_passes_structures_as_json_and_stands_in_secrets(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n  aicash:cloud: local\n  aicash:inference:\n    minReplicas: 2\n"
        "  aicash:dbPassword:\n    secure: v1:abc\n  aicash:installAddons: true\n"
    )
    config, secret_keys = stack_config("dev", tmp_path, overrides={"imageTag": "9.9.9"}, secrets={"dbPassword": "x"})
    assert json.loads(config["aicash:inference"]) == {"minReplicas": 2}
    assert config["aicash:installAddons"] == "true"
    assert config["aicash:imageTag"] == "9.9.9"
    assert config["aicash:dbPassword"] == "x"
    assert config["aicash:minioPassword"] == placeholder("minioPassword")
    assert set(secret_keys) == {
        "aicash:dbPassword", "aicash:smtpPassword", "aicash:minioPassword", "aicash:redisPassword"}


def test_image_tag_rollback_changes_only_the_release_tag(tmp_path: Path) -> None:
    """`pulumi config set imageTag <previous> && pulumi up` redeploys the previous images, nothing else."""
    new = render("dev", tmp_path / "new", overrides={"imageTag": "0.2.0"}).files
    old = render("dev", tmp_path / "old", overrides={"imageTag": "0.1.0"}).files
    new_files = {p.name: p.read_text() for p in new}
    old_files = {p.name: p.read_text() for p in old}
    # the migrations Job is per release: each tag runs `aicash db upgrade` (or is the older schema's Job)
    # and so is the Job reconciling KFP's recurring training run: its command names the image, so its name changes
    training = {name for name in new_files.keys() ^ old_files.keys() if "aicash-training-schedule-" in name}
    assert len(training) == 2
    assert set(new_files) - set(old_files) - training == {"job_aicash_aicash-db-upgrade-0-2-0.yaml"}
    assert set(old_files) - set(new_files) - training == {"job_aicash_aicash-db-upgrade-0-1-0.yaml"}
    changed = {name for name in new_files.keys() & old_files.keys() if new_files[name] != old_files[name]}
    workloads = {
        "deployment_aicash_aicash-inference.yaml",
        "deployment_aicash_aicash-feature-server.yaml",
        "cronjob_aicash_aicash-drift-report.yaml",
        "cronjob_aicash_aicash-health-check.yaml",
        "cronjob_aicash_aicash-canary-judge.yaml",
        "cronjob_aicash_aicash-kfp-sync.yaml",
        "deployment_aicash_aicash-monitor-exporter.yaml",
        "cronjob_aicash_aicash-ingest.yaml",
        "cronjob_aicash_aicash-signal-weights.yaml",
    }
    # the settings name the image of KFP runs (KFP_IMAGE), so retraining also goes back to the previous release
    settings = {"configmap_aicash_aicash-settings.yaml", "configmap_kubeflow_aicash-settings.yaml"}
    assert changed == workloads | settings
    for name in changed:
        diff = [
            line
            for line in difflib.unified_diff(old_files[name].splitlines(), new_files[name].splitlines(), n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        ]
        key = "image:" if name in workloads else "KFP_IMAGE:"
        assert diff and all(line[1:].strip().startswith(key) for line in diff), diff
        assert any(line.endswith(":0.1.0") for line in diff) and any(line.endswith(":0.2.0") for line in diff)


def test_only_kubernetes_objects_are_rendered(program: RecordingMocks) -> None:
    rendered = [r for r in program.records if is_kubernetes_object(r)]
    skipped = {r.typ.split(":")[0] for r in program.records if not is_kubernetes_object(r)}
    assert rendered and skipped <= {"aicash", "kubernetes", "aws", "pulumi"}
    assert not any(r.typ.startswith("aws:") for r in rendered)


def test_render_runs_after_an_asyncio_run_in_the_same_process(tmp_path: Path) -> None:
    """`asyncio.run()` leaves the thread without an event loop; Pulumi's runtime needs one."""
    import asyncio

    from infra.render import render

    asyncio.run(asyncio.sleep(0))
    assert render("dev", tmp_path / "dev").files
