"""The platform's own loop (`aicash:schedules`, infra/schedules.py): each job's rendered schedule in each stack, its
command line, Forbid, history and limits, each turned off from stack config, and bad values refused at `pulumi up`.
Every rendered object is also validated against the Kubernetes schema by tests/infra/test_render.py."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import typer
import yaml

from aicash.cli.main import app
from infra import kube
from infra.config import ConfigError, IngestSchedule, check_cron
from infra.kubeflow import api_url
from infra.policy.rules import pod_spec
from infra.render import manifests, run_program
from infra.schedules import (
    INGEST_EGRESS_POLICY,
    INGEST_JOB,
    INGEST_SECRET,
    SIGNAL_WEIGHTS_JOB,
    TRAINING_JOB,
    ingest_command,
)
from tests.support.infra import find

CRON_JOBS = (INGEST_JOB, SIGNAL_WEIGHTS_JOB)
CRONTAB = Path(__file__).resolve().parents[2] / "scripts" / "crontab"  # local mode's schedules


def stack_schedules(stack: str) -> dict[str, Any]:
    return yaml.safe_load(Path(f"Pulumi.{stack}.yaml").read_text())["config"]["aicash:schedules"]


def training_jobs(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == "Job" and o["metadata"]["name"].startswith(f"{TRAINING_JOB}-")]


def command(obj: dict[str, Any]) -> list[str]:
    [container] = pod_spec(obj)["containers"]
    return container["command"]


def with_schedules(stack: str, **jobs: dict[str, Any]) -> list[dict[str, Any]]:
    """The stack rendered with some of its `aicash:schedules` blocks replaced."""
    return manifests(run_program(stack, overrides={"schedules": json.dumps({**stack_schedules(stack), **jobs})}))


def test_each_job_runs_on_the_schedule_of_its_stack(objects: list[dict[str, Any]], stack: str) -> None:
    declared = stack_schedules(stack)
    ingest = find(objects, "CronJob", INGEST_JOB, "aicash")["spec"]
    weights = find(objects, "CronJob", SIGNAL_WEIGHTS_JOB, "aicash")["spec"]
    [training] = training_jobs(objects)
    cron = command(training)[command(training).index("--cron") + 1]
    recurring = command(training)[command(training).index("--name") + 1]
    print(f"\n{stack}: {INGEST_JOB} {ingest['schedule']!r} ({ingest['timeZone']}); {SIGNAL_WEIGHTS_JOB} "
          f"{weights['schedule']!r} ({weights['timeZone']}); KFP recurring run {recurring} {cron!r} (UTC), "
          f"reconciled by Job {training['metadata']['name']}")
    assert ingest["schedule"] == declared["ingest"]["schedule"] == "5 * * * *"  # every hourly bar
    assert weights["schedule"] == declared["signalWeights"]["schedule"] == "0 4 * * 6"  # weekly
    assert cron == declared["training"]["schedule"] == "0 3 * * 0"  # weekly
    assert ingest["timeZone"] == weights["timeZone"] == "Etc/UTC"


@pytest.mark.parametrize("name", CRON_JOBS)
def test_cron_jobs_never_overlap_keep_a_short_history_and_have_limits(
    objects: list[dict[str, Any]], name: str
) -> None:
    cron = find(objects, "CronJob", name, "aicash")
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 3)
    assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 0
    [container] = pod_spec(cron)["containers"]
    assert set(container["resources"]["limits"]) == {"cpu", "memory"}
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    for labels in (cron["metadata"]["labels"], spec["jobTemplate"]["spec"]["template"]["metadata"]["labels"]):
        assert labels[kube.PLATFORM_CLIENT] == "true"  # platform-egress: database, object store, KFP
        assert labels["app.kubernetes.io/component"] == "schedules"
    assert {"configMapRef": {"name": kube.SETTINGS_CONFIGMAP}} in container["envFrom"]


def test_the_command_lines(objects: list[dict[str, Any]], stack: str) -> None:
    source = stack_schedules(stack)["ingest"]["source"]
    assert command(find(objects, "CronJob", INGEST_JOB, "aicash")) == [
        "sh", "-c", f"aicash data ingest --from {source} && aicash features apply && "
                    "aicash features materialize --incremental"]  # fmt: skip
    assert command(find(objects, "CronJob", SIGNAL_WEIGHTS_JOB, "aicash")) == [
        "aicash", "pipeline", "run", "signal-weights", "--symbol", "EURUSD", "--timeframe", "1h", "--use-trades"]
    [training] = training_jobs(objects)
    image = find(objects, "ConfigMap", kube.SETTINGS_CONFIGMAP, "aicash")["data"]["KFP_IMAGE"]
    assert command(training) == [
        "aicash", "pipeline", "schedule", "lstm-training", "--reconcile", "--name", "aicash-lstm-training",
        "--host", api_url("kubeflow"), "--image", image, "--cron", "0 3 * * 0", "--symbol", "EURUSD",
        "--timeframe", "1h"]  # fmt: skip
    job = training["spec"]
    assert job["backoffLimit"] >= 1 and job["activeDeadlineSeconds"] <= 540  # inside Pulumi's wait for a Job
    assert training["metadata"]["labels"][kube.PLATFORM_CLIENT] == "true"  # may reach KFP's API and PostgreSQL
    assert pod_spec(training)["containers"][0]["resources"]["limits"]


def test_the_training_job_is_rerun_only_when_its_spec_changes() -> None:
    [same] = training_jobs(with_schedules("dev"))
    [moved] = training_jobs(with_schedules("dev", training={"schedule": "0 5 * * 0"}))
    [again] = training_jobs(with_schedules("dev", training={"schedule": "0 5 * * 0"}))
    assert moved["metadata"]["name"] == again["metadata"]["name"] != same["metadata"]["name"]
    assert "0 5 * * 0" in command(moved)


def test_each_job_is_turned_off_from_stack_config() -> None:
    off = with_schedules("prod", ingest={"enabled": False}, signalWeights={"enabled": False},
                         training={"enabled": False})
    names = {o["metadata"]["name"] for o in off if o["kind"] == "CronJob"}
    assert not names & set(CRON_JOBS)
    assert {"aicash-drift-report", "aicash-health-check"} <= names  # the monitoring jobs stay
    # a turned-off training schedule must also leave KFP: the Job deletes the recurring run
    [training] = training_jobs(off)
    assert command(training)[-1] == "--off" and "--cron" not in command(training)
    only_weights = with_schedules("prod", ingest={"enabled": False})
    assert {o["metadata"]["name"] for o in only_weights if o["kind"] == "CronJob"} & set(CRON_JOBS) == {
        SIGNAL_WEIGHTS_JOB}


@pytest.mark.parametrize(
    ("jobs", "message"),
    [
        ({"ingest": {"enabled": True, "schedule": "61 * * * *", "source": "s3://b/p/"}},
         "aicash:schedules.ingest.schedule: '61 * * * *': bad minute '61'"),
        ({"training": {"schedule": "weekly"}}, "aicash:schedules.training.schedule: 'weekly' is not a cron"),
        ({"signalWeights": {"schedule": "0 4 * * 7"}}, "aicash:schedules.signalWeights.schedule: '0 4 * * 7'"),
        ({"ingest": {"enabled": True}}, "aicash:schedules.ingest.source: an s3://bucket/prefix/ or a database URL"),
        ({"ingest": {"enabled": True, "source": "postgresql://u:pw@db/trading", "table": "candles"}},
         "aicash:schedules.ingest.source: no password in the URL"),
        ({"ingest": {"enabled": True, "source": "s3://b/p/", "sourse": "x"}},
         "aicash:schedules.ingest: unknown field 'sourse'"),
        ({"retrain": {}}, "aicash:schedules: unknown job 'retrain'"),
    ],
)
def test_bad_values_are_refused_at_pulumi_up_naming_the_key(jobs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("*", r"\*").replace("?", r"\?")):
        run_program("dev", overrides={"schedules": json.dumps(jobs)})


@pytest.mark.parametrize("expression", ["5 * * * *", "*/15 6-18 * * MON-FRI", "0 0 1,15 JAN-JUN ?", "@weekly"])
def test_cron_expressions_a_cron_job_takes_are_accepted(expression: str) -> None:
    assert check_cron(expression, "k") == expression


def test_a_sql_source_outside_the_cluster_gets_its_own_egress() -> None:
    sql = {"enabled": True, "schedule": "5 * * * *", "source": "postgresql://reader@trading-db.example.com/trading",
           "table": "candles", "columns": ["timestamp=time"], "sourceCidrs": ["10.50.0.0/24"], "sourcePort": 5433}
    objects = with_schedules("prod", ingest=sql)
    assert command(find(objects, "CronJob", INGEST_JOB, "aicash"))[2].startswith(
        "aicash data ingest --from postgresql://reader@trading-db.example.com/trading --table candles "
        "--column timestamp=time && ")
    policy = find(objects, "NetworkPolicy", INGEST_EGRESS_POLICY, "aicash")
    kubernetes_validate.validate(policy, "1.30", strict=True)
    assert policy["spec"]["podSelector"]["matchLabels"] == kube.selector(INGEST_JOB)
    assert policy["spec"]["egress"] == [{"to": [{"ipBlock": {"cidr": "10.50.0.0/24"}}],
                                         "ports": [{"protocol": "TCP", "port": 5433}]}]
    assert not [o for o in with_schedules("prod") if o["metadata"].get("name") == INGEST_EGRESS_POLICY]


def test_a_sql_sources_password_comes_from_a_stack_secret_as_pgpassword() -> None:
    sql = {"enabled": True, "source": "postgresql://reader@trading-db.example.com/trading", "table": "candles"}
    config = {"schedules": json.dumps({**stack_schedules("dev"), "ingest": sql}), "ingestSourcePassword": "src-Pa55"}
    program = run_program("dev", overrides=config)
    secret = find(manifests(program, redacted=False), "Secret", INGEST_SECRET, "aicash")
    assert secret["stringData"] == {"PGPASSWORD": "src-Pa55"}
    rendered = manifests(program)
    assert "src-Pa55" not in json.dumps(rendered)  # a Pulumi secret: redacted in every render
    [container] = pod_spec(find(rendered, "CronJob", INGEST_JOB, "aicash"))["containers"]
    assert container["env"] == [{"name": "PGPASSWORD",
                                 "valueFrom": {"secretKeyRef": {"name": INGEST_SECRET, "key": "PGPASSWORD"}}}]
    for obj in rendered:
        if obj["metadata"].get("name") in (INGEST_SECRET, INGEST_JOB):
            kubernetes_validate.validate(obj, "1.30", strict=True)
    [weights] = pod_spec(find(rendered, "CronJob", SIGNAL_WEIGHTS_JOB, "aicash"))["containers"]
    assert "PGPASSWORD" not in json.dumps(weights.get("env", []))  # only the ingest job gets it
    assert not [o for o in with_schedules("dev") if o["metadata"].get("name") == INGEST_SECRET]


def test_the_signal_weights_job_logs_in_as_training_and_ingest_as_the_owner(objects: list[dict[str, Any]]) -> None:
    """The weights job reads trades and writes weights: its own login in aicash_training (Secret
    `aicash-database-logins`). The ingest job writes market data and applies Feast's definitions: the owner, from the
    settings Secret (no DATABASE_URL of its own)."""
    [weights] = pod_spec(find(objects, "CronJob", SIGNAL_WEIGHTS_JOB, "aicash"))["containers"]
    assert weights["env"] == [{"name": "DATABASE_URL", "valueFrom": {"secretKeyRef": {
        "name": "aicash-database-logins", "key": "TRAINING_DATABASE_URL"}}}]
    [ingest] = pod_spec(find(objects, "CronJob", INGEST_JOB, "aicash"))["containers"]
    assert "DATABASE_URL" not in json.dumps(ingest.get("env", []))
    assert {"secretRef": {"name": kube.SETTINGS_SECRET}} in ingest["envFrom"]


@pytest.mark.parametrize(("ingest_exit", "ran"), [(0, ["data", "features apply", "features materialize"]),
                                                  (1, ["data"])])
def test_the_ingest_job_materializes_only_after_a_successful_ingest(tmp_path: Path, ingest_exit: int,
                                                                    ran: list[str]) -> None:
    """The job's own command, run against a stand-in `aicash` that logs its arguments."""
    bindir, log = tmp_path / "bin", tmp_path / "calls"
    bindir.mkdir()
    fake = bindir / "aicash"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {log}\n[ "$1" = data ] && exit {ingest_exit}\nexit 0\n')
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    job = ingest_command(IngestSchedule(enabled=True, source="s3://bucket/candles it's/"))
    done = subprocess.run(job, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    assert done.returncode == ingest_exit
    calls = log.read_text().splitlines()
    assert calls[0] == "data ingest --from s3://bucket/candles it's/"  # quoted: the URI arrives as one argument
    assert [" ".join(c.split()[:2]) if c.startswith("features") else c.split()[0] for c in calls] == ran


def crontab_jobs() -> dict[str, tuple[str, list[list[str]]]]:
    """scripts/crontab: the first command's first three words -> (schedule, the line's aicash commands' words)."""
    jobs = {}
    for line in CRONTAB.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#") or "=" in line.split()[0]:
            continue
        fields = line.split(None, 5)
        commands = [shlex.split(part)[1:] for part in fields[5].split("&&") if ".venv/bin/aicash" in part]
        jobs[" ".join(commands[0][:3])] = (" ".join(fields[:5]), commands)
    return jobs


def test_the_local_crontab_runs_the_same_commands_at_the_stacks_times() -> None:
    declared = stack_schedules("dev")
    jobs = crontab_jobs()
    assert {name: schedule for name, (schedule, _) in jobs.items()} == {
        "data ingest --from": declared["ingest"]["schedule"],
        "pipeline run lstm-training": declared["training"]["schedule"],
        "pipeline run signal-weights": declared["signalWeights"]["schedule"],
    }
    assert [c[:3] for c in jobs["data ingest --from"][1]] == [
        ["data", "ingest", "--from"], ["features", "apply"], ["features", "materialize", "--incremental"]]
    assert "--use-trades" in jobs["pipeline run signal-weights"][1][0]
    group = typer.main.get_command(app)
    with group.context_class(group) as ctx:  # every command line parses: no unknown option, no bad value
        for _, commands in jobs.values():
            for words in commands:
                words = list(words)
                command: Any = group
                while hasattr(command, "list_commands"):  # a group (typer's own click classes: duck-typed)
                    command = command.get_command(ctx, words.pop(0))
                    assert command is not None, commands
                command.make_context(command.name, words)  # raises on an unknown option or a bad value
