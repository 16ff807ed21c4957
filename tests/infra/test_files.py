"""The files around the program parse and say what the platform relies on; the objects and files the docs name
exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from infra import kube
from infra.config import SECRET_KEYS
from tests.support.docs import DOCS, kubernetes_names, repository_paths
from tests.support.infra import find

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


def _runs(job: dict[str, Any]) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def _position(runs: list[str], command: str) -> int:
    hits = [i for i, run in enumerate(runs) if command in run]
    assert hits, command
    return hits[0]


def test_workflow_lints_tests_audits_builds_and_previews() -> None:
    workflow = _yaml(".github/workflows/ml-pipeline.yml")
    assert set(workflow["jobs"]) == {"lint", "test", "build", "preview"}
    runs = " ".join(run for job in workflow["jobs"].values() for run in _runs(job))
    for command in ("ruff check", "make test", "make audit", "aicash pipeline compile", "pulumi preview",
                    "--policy-pack infra/policy"):  # fmt: skip
        assert command in runs, command
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^audit:.*\n\t.*scripts/audit\.py requirements\.lock", makefile, re.M)


def test_the_build_job_makes_what_the_bentofile_needs_before_building() -> None:
    """bentos/bentofile.yaml needs a model in BentoML's store and the aicash wheel: the job produces both."""
    bentofile = _yaml("bentos/bentofile.yaml")
    assert bentofile["models"] == ["signal-lstm:latest"]
    assert bentofile["python"]["wheels"] == ["dist/aicash-0.1.0-py3-none-any.whl"]
    runs = _runs(_yaml(".github/workflows/ml-pipeline.yml")["jobs"]["build"])
    order = [
        "make install",
        "aicash data ingest --sample eurusd-1h",
        "aicash features apply",
        "aicash features materialize",
        "aicash pipeline run lstm-training",
        "aicash models promote",
        "aicash serve --build",  # exports the model, builds the wheel into dist/, runs bentoml build (tests/bentos)
    ]
    positions = [_position(runs, command) for command in order]
    assert positions == sorted(positions)
    promote = runs[_position(runs, "aicash models promote")]
    assert "--traffic 100" in promote and "--force" in promote and "--reason" in promote
    assert not any("bentoml build" in run for run in runs)  # only through `aicash serve --build`


def test_preview_sets_every_stack_secret_from_github_secrets() -> None:
    job = _yaml(".github/workflows/ml-pipeline.yml")["jobs"]["preview"]
    steps = job["steps"]
    preview = next(i for i, step in enumerate(steps) if "pulumi preview --stack prod" in step.get("run", ""))
    before = steps[:preview]
    for key in SECRET_KEYS["aws"]:
        [step] = [s for s in before if f"pulumi config set --secret --stack prod aicash:{key}" in s.get("run", "")]
        line = next(x for x in step["run"].splitlines() if f"aicash:{key}" in x)
        pattern = r"printf '%s' \"\$(\w+)\" \| pulumi config set --secret --stack prod aicash:" + key
        variable = re.fullmatch(pattern, line.strip()).group(1)  # piped in: never a value on the command line
        assert re.fullmatch(r"\$\{\{ secrets\.AICASH_PROD_\w+ \}\}", step["env"][variable])
    stack_file = (ROOT / "Pulumi.prod.yaml").read_text()
    assert "AICASH_PROD_DB_PASSWORD" in stack_file and "AICASH_PROD_SMTP_PASSWORD" in stack_file


def test_platform_image_is_slim_pinned_and_non_root() -> None:
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text()
    assert re.findall(r"^FROM (\S+)", dockerfile, re.M) == ["python:3.11-slim", "python:3.11-slim"]
    assert "-c constraints.txt" in dockerfile
    assert re.search(r"^USER (\d+):(\d+)$", dockerfile, re.M).group(1) == str(kube.PLATFORM_UID)


# kubectl's short kinds, as the docs write them -> the object's kind
_KINDS = {"deploy": "Deployment", "deployment": "Deployment", "job": "Job", "cronjob": "CronJob",
          "configmap": "ConfigMap", "secret": "Secret", "svc": "Service", "service": "Service"}


def test_every_object_the_docs_name_is_one_the_program_creates(objects: list[dict[str, Any]]) -> None:
    """`kubectl -n aicash logs deploy/aicash-feature-server`, `job/aicash-db-upgrade-0-1-0`, ...: what the commands
    in README.md and docs/*.md act on exists in the stack."""
    named = {(doc.name, kind, name) for doc in DOCS for kind, name in kubernetes_names(doc.read_text())}
    assert named
    created = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert not sorted((doc, f"{kind}/{name}") for doc, kind, name in named if (_KINDS[kind], name) not in created)


def test_every_repository_path_the_docs_name_exists() -> None:
    named = {(doc.name, path) for doc in DOCS for path in repository_paths(doc.read_text())}
    assert named
    assert not sorted((doc, path) for doc, path in named if not (ROOT / path).exists())


def test_pulumi_creates_the_namespace_and_the_operator_adds_the_tls_secret(objects: list[dict[str, Any]]) -> None:
    """The bring-up order: `pulumi up` creates Namespace aicash (one created beforehand makes it fail); the Ingress
    reads a TLS secret that the program does not create (`kubectl create secret tls` afterwards)."""
    assert [o for o in objects if o["kind"] == "Namespace" and o["metadata"]["name"] == "aicash"]
    [tls] = find(objects, "Ingress", "aicash-inference")["spec"]["tls"]
    assert not [o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == tls["secretName"]]
