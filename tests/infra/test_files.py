"""The files around the program parse and say what the platform relies on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from aicash.settings import Settings
from infra import kube
from infra.config import SECRET_KEYS
from infra.migrations import job_name

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
        "aicash serve --build",  # exports the production model, builds the wheel into dist/, runs bentoml build
    ]
    positions = [_position(runs, command) for command in order]
    assert positions == sorted(positions)
    promote = runs[_position(runs, "aicash models promote")]
    assert "--traffic 100" in promote and "--force" in promote and "--reason" in promote
    serve = (ROOT / "src" / "aicash" / "cli" / "serve.py").read_text()
    assert '"wheel", "--no-deps", "-q", "-w", "dist"' in serve and '"build", "-f", "bentos/bentofile.yaml"' in serve
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


def _commands(markdown: str) -> list[str]:
    """Every line of the markdown's bash blocks."""
    blocks = re.findall(r"```bash\n(.*?)```", markdown, re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_bring_up_lets_pulumi_create_the_namespace_and_then_adds_the_certificate() -> None:
    """The `Cluster` component creates Namespace aicash: creating it by hand first makes `pulumi up` fail."""
    commands = _commands((ROOT / "docs" / "platform-team.md").read_text())
    assert not [c for c in commands if "create namespace" in c]
    first_up = next(i for i, c in enumerate(commands) if c.startswith("pulumi up"))
    tls = next(i for i, c in enumerate(commands) if "create secret tls aicash-inference-tls" in c)
    assert first_up < tls


def test_runbook_names_what_the_program_creates() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    jobs = set(re.findall(r"job/(aicash-db-upgrade-[\w.-]+)", runbook))
    assert jobs == {job_name("0.1.0")} == {"aicash-db-upgrade-0-1-0"}, jobs  # the slug, not the raw tag
    for path in re.findall(r"`(features/[\w./-]+\.yaml)`", runbook):
        assert (ROOT / path).is_file(), path
    for path in ("features/feature_store.cluster.yaml", "features/feature_store.local.yaml"):
        assert path in runbook and "pull_latest_features: true" in (ROOT / path).read_text()
    assert "50k" not in runbook and "410 MB" not in runbook  # not what the drift job compares


def test_model_rollback_relies_on_the_registry_reload_not_a_restart() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    model = runbook[runbook.index("### Model"):]
    rollback_block = re.search(r"```bash\n(.*?)```", model, re.S).group(1)
    assert "aicash models rollback" in rollback_block and "rollout restart" not in rollback_block
    assert "REGISTRY_RELOAD_SECONDS" in model and Settings.model_fields["registry_reload_seconds"].default == 10
    assert "(10 s by default)" in model


def test_readme_platform_section_says_how_to_reach_and_use_the_platform() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## For the platform team: infrastructure as code"):]
    section = section[: section.find("\n## ", 5)] if "\n## " in section[5:] else section
    for text in ("port-forward svc/ml-pipeline-ui", "port-forward svc/ml-pipeline 8888:8888",
                 "pulumi stack output inference_url", "kubectl -n aicash exec", "keys create",
                 "aicash pipeline submit lstm-training --host", "pulumi stack select prod", "docs/platform-team.md",
                 "docs/runbook.md"):  # fmt: skip
        assert text in section, text
