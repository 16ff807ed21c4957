"""The files around the program parse and say what the platform relies on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from infra import kube

ROOT = Path(__file__).resolve().parents[2]


def _yaml(path: str) -> Any:
    return yaml.safe_load((ROOT / path).read_text())


def test_pulumi_project_runs_the_infra_package_from_the_repo_venv() -> None:
    project = _yaml("Pulumi.yaml")
    assert project["name"] == "aicash" and project["runtime"]["name"] == "python"
    assert project["main"] == "infra/"
    assert project["runtime"]["options"] == {"toolchain": "pip", "virtualenv": ".venv"}


def test_stack_files_hold_no_secret_values() -> None:
    for stack in ("dev", "prod"):
        config = _yaml(f"Pulumi.{stack}.yaml")["config"]
        assert not any(re.search(r"password|secret|token", key, re.I) for key in config), stack
        assert not any(isinstance(v, dict) and "secure" in v for v in config.values())
    assert _yaml("Pulumi.dev.yaml")["config"]["aicash:cloud"] == "local"
    assert _yaml("Pulumi.prod.yaml")["config"]["aicash:cloud"] == "aws"


def test_compose_stack_has_the_local_services_and_no_inline_secrets() -> None:
    compose = _yaml("docker-compose.yml")
    assert {"postgres", "minio", "bento", "mailpit", "migrate"} <= set(compose["services"])
    assert compose["services"]["bento"]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert compose["services"]["bento"]["ports"] == ["127.0.0.1:3000:3000"]
    text = (ROOT / "docker-compose.yml").read_text()
    assert "${POSTGRES_PASSWORD:?" in text and "${MINIO_ROOT_PASSWORD:?" in text
    env = compose["services"]["bento"]["environment"]
    assert env["S3_ENDPOINT_URL"] == "http://minio:9000" and env["SMTP_HOST"] == "mailpit"


def test_workflow_lints_tests_builds_and_previews() -> None:
    workflow = _yaml(".github/workflows/ml-pipeline.yml")
    assert set(workflow["jobs"]) == {"lint", "test", "build", "preview"}
    runs = " ".join(step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"])
    for command in ("ruff check", "make test", "aicash pipeline compile", "bentoml build -f bentos/bentofile.yaml",
                    "pulumi preview", "--policy-pack infra/policy"):  # fmt: skip
        assert command in runs, command


def test_platform_image_is_slim_pinned_and_non_root() -> None:
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text()
    assert re.findall(r"^FROM (\S+)", dockerfile, re.M) == ["python:3.11-slim", "python:3.11-slim"]
    assert "-c constraints.txt" in dockerfile
    assert re.search(r"^USER (\d+):(\d+)$", dockerfile, re.M).group(1) == str(kube.PLATFORM_UID)


def test_runbook_maps_incidents_and_rollbacks_to_commands() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    for heading in ("Training fails", "Predictions slow", "Memory pressure", "Database connection failures"):
        assert f"## {heading}" in runbook or f"### {heading}" in runbook, heading
    for command in ("aicash db downgrade", "aicash models rollback", "pulumi config set imageTag", "pulumi up"):
        assert command in runbook, command


def test_platform_team_doc_covers_bring_up_and_kfp_access() -> None:
    doc = (ROOT / "docs" / "platform-team.md").read_text()
    for text in ("pulumi stack init dev", "pulumi up", "port-forward", "ml-pipeline-ui", "prod"):
        assert text in doc, text
