"""The monitoring CronJobs and the alert rules: what each job runs, what it scrapes, and how it exits."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from aicash.monitoring.alerts import rules_yaml
from infra import kube
from infra.monitoring import ALERT_RULES_FILE, canary_command
from infra.policy.rules import pod_spec
from infra.render import manifests, run_program
from tests.support.infra import find


def _command(objects: list[dict[str, Any]], name: str) -> list[str]:
    [container] = pod_spec(find(objects, "CronJob", name, "aicash"))["containers"]
    return container["command"]


def test_the_alert_check_mails_and_scrapes_the_in_cluster_service(objects: list[dict[str, Any]]) -> None:
    command = _command(objects, "aicash-health-check")
    assert command[:4] == ["aicash", "monitor", "check", "--email"]
    assert "--sample-seconds" not in command  # two scrapes through a Service may reach two replicas
    url = urlsplit(command[command.index("--metrics-url") + 1])
    public = urlsplit(find(objects, "ConfigMap", kube.SETTINGS_CONFIGMAP, "aicash")["data"]["INFERENCE_API_URL"])
    assert url.hostname != public.hostname
    name, namespace, *rest = url.hostname.split(".")
    assert rest == ["svc", "cluster", "local"] and url.scheme == "http" and url.path == "/metrics"
    service = find(objects, "Service", name, namespace)
    assert [p["port"] for p in service["spec"]["ports"]] == [url.port]
    deployment = find(objects, "Deployment", name, namespace)
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    job = find(objects, "CronJob", "aicash-health-check", "aicash")["spec"]["jobTemplate"]["spec"]
    assert job["backoffLimit"] == 0  # a rerun would mail the same alerts again


def test_the_drift_report_is_mailed_and_retrains_on_drift(objects: list[dict[str, Any]]) -> None:
    assert _command(objects, "aicash-drift-report") == ["aicash", "monitor", "drift", "--email", "--retrain"]
    off = manifests(run_program("dev", overrides={"monitoring": json.dumps({"retrainOnDrift": False})}))
    assert _command(off, "aicash-drift-report") == ["aicash", "monitor", "drift", "--email"]


def test_the_canary_is_judged_on_its_schedule(objects: list[dict[str, Any]], stack: str) -> None:
    cron = find(objects, "CronJob", "aicash-canary-judge", "aicash")
    stack_file = yaml.safe_load(Path(f"Pulumi.{stack}.yaml").read_text())["config"]["aicash:monitoring"]
    assert cron["spec"]["schedule"] == stack_file["canarySchedule"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    command = _command(objects, "aicash-canary-judge")
    assert command[:2] == ["sh", "-c"] and "aicash monitor canary --apply" in command[2]
    report_only = manifests(run_program("dev", overrides={"monitoring": json.dumps({"canaryApply": False})}))
    script = _command(report_only, "aicash-canary-judge")[2]
    assert "aicash monitor canary" in script and "--apply" not in script


@pytest.fixture
def fake_aicash(tmp_path: Path) -> Any:
    """Run the canary job's command against a stand-in `aicash` that prints `message` and exits `code`."""

    def run(message: str, code: int) -> subprocess.CompletedProcess[str]:
        bindir = tmp_path / "bin"
        bindir.mkdir(exist_ok=True)
        fake = bindir / "aicash"
        fake.write_text(f"#!/bin/sh\necho 'args:' \"$@\"\necho {shlex.quote(message)} >&2\nexit {code}\n")
        fake.chmod(0o755)
        env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
        return subprocess.run(canary_command(apply=True), capture_output=True, text=True, env=env, check=False)  # noqa: S603

    return run


@pytest.mark.parametrize(
    ("message", "code", "expected"),
    [
        ("error: no canary is serving: start one with `aicash models promote VERSION --traffic 10`", 2, 0),
        ("error: something else the caller got wrong", 2, 2),
        ("error: the database is unreachable", 1, 1),
        ("promote: canary significantly better on accuracy", 0, 0),
    ],
)
def test_no_canary_is_success_and_every_other_failure_stays_one(fake_aicash: Any, message: str, code: int,
                                                                 expected: int) -> None:  # fmt: skip
    done = fake_aicash(message, code)
    assert done.returncode == expected
    assert "args: monitor canary --apply" in done.stdout and message in done.stdout  # the job log keeps it all


def test_alert_rules_are_deployed_as_written(objects: list[dict[str, Any]]) -> None:
    data = find(objects, "ConfigMap", "aicash-alert-rules", "aicash")["data"]
    assert data == {"alerts.yml": ALERT_RULES_FILE.read_text(encoding="utf-8")}
    assert data["alerts.yml"] == rules_yaml()  # the same rules `aicash monitor check` evaluates
    rules = [rule["alert"] for group in yaml.safe_load(data["alerts.yml"])["groups"] for rule in group["rules"]]
    assert set(rules) == {"AicashPredictLatencyHigh", "AicashDriftDetected", "AicashTrainingFailed",
                          "AicashLiveAccuracyLow", "AicashFeaturesStale", "AicashDatabaseUnreachable",
                          "AicashLiveWinRateLow", "AicashLiveConfidenceLow"}  # fmt: skip


def test_kfp_runs_are_synced_on_their_schedule_from_the_in_cluster_api(objects: list[dict[str, Any]],
                                                                       stack: str) -> None:  # fmt: skip
    """`aicash pipeline status` every 5 minutes, against KFP_HOST from the platform settings; `kfpSync: false`
    turns the job off."""
    import typer

    from aicash.cli.main import app
    from infra.kubeflow import api_url

    cron = find(objects, "CronJob", "aicash-kfp-sync", "aicash")
    stack_file = yaml.safe_load(Path(f"Pulumi.{stack}.yaml").read_text())["config"]["aicash:monitoring"]
    assert cron["spec"]["schedule"] == stack_file["kfpSyncSchedule"] == "*/5 * * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid" and cron["spec"]["jobTemplate"]["spec"]["backoffLimit"] == 0
    command = _command(objects, "aicash-kfp-sync")
    assert command == ["aicash", "pipeline", "status"]
    group = typer.main.get_command(app)
    with group.context_class(group) as ctx:
        status = group.get_command(ctx, "pipeline").get_command(ctx, "status")  # type: ignore[attr-defined]
        status.make_context("status", command[3:])  # a real command: no host option, so KFP_HOST
    [container] = pod_spec(cron)["containers"]
    assert {"configMapRef": {"name": kube.SETTINGS_CONFIGMAP}} in container["envFrom"]
    settings = find(objects, "ConfigMap", kube.SETTINGS_CONFIGMAP, "aicash")["data"]
    assert settings["KFP_HOST"] == api_url("kubeflow")

    off = manifests(run_program("dev", overrides={"monitoring": json.dumps({"kfpSync": False})}))
    cron_jobs = {o["metadata"]["name"] for o in off if o["kind"] == "CronJob"}
    assert "aicash-kfp-sync" not in cron_jobs and "aicash-health-check" in cron_jobs
    every = manifests(run_program("dev", overrides={"monitoring": json.dumps({"kfpSyncSchedule": "*/2 * * * *"})}))
    assert find(every, "CronJob", "aicash-kfp-sync", "aicash")["spec"]["schedule"] == "*/2 * * * *"
