"""`Schedules`: the platform's own loop, declared in the stack (`aicash:schedules`); each job can be turned off.

- `aicash-ingest` (CronJob, every bar): `aicash data ingest --from SOURCE`, then `aicash features apply` (idempotent:
  the registry follows the release) and `aicash features materialize --incremental`, in one pod and in that order:
  materialization only makes sense after the ingest it follows, so one job that stops at the first failure, never
  overlaps itself (Forbid) and never races a second CronJob is simpler than two timed apart.
- `aicash-signal-weights` (CronJob, weekly): `aicash pipeline run signal-weights --use-trades` in the pod with KFP's
  local runner, so the job's limits, Forbid and history are the run's own. It logs in as the training login
  (aicash_training: reads trades and candles, writes weights); the ingest job stays the owner's (it writes market
  data and applies Feast's definitions, which no application role may).
- `aicash-training-schedule-<hash>` (Job, at `pulumi up`): `aicash pipeline schedule lstm-training --reconcile`
  makes KFP hold exactly the declared recurring run (`--off`: none). Its name carries a hash of its command, so a
  changed schedule, symbol list or image tag is a new Job that runs once; an unchanged stack leaves it alone.
- NetworkPolicy `ingest-to-source`, only with `sourceCidrs`: egress for a source outside the cluster that is not
  on 443 (a SQL database); S3 needs nothing more than `platform-egress`.
- Secret `aicash-ingest-source`, only with the stack secret `aicash:ingestSourcePassword`: a SQL source's password,
  given to the ingest job as PGPASSWORD (libpq's), so that neither the stack file nor the CronJob holds it.

Every pod is a platform client (`aicash.io/platform-client`): `platform-egress` lets it reach PostgreSQL, the
object store, the feature server and KFP's API.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from infra import kube
from infra.component import Component
from infra.config import (
    CRON_MACROS,
    IngestSchedule,
    Resources,
    SchedulesConfig,
    SignalWeightsSchedule,
    TrainingSchedule,
)
from infra.database import login_env
from infra.monitoring import MonitoringJob, cron_job_spec

COMPONENT = "schedules"
INGEST_JOB = "aicash-ingest"
SIGNAL_WEIGHTS_JOB = "aicash-signal-weights"
TRAINING_JOB = "aicash-training-schedule"
INGEST_EGRESS_POLICY = "ingest-to-source"
INGEST_SECRET = "aicash-ingest-source"  # noqa: S105 - a Secret's name
PASSWORD_ENV = "PGPASSWORD"  # noqa: S105 - libpq's variable, read when the URL has no password
TRAINING_LOGIN = login_env(("DATABASE_URL", "TRAINING_DATABASE_URL"))  # the signal-weights job's own login


@dataclass(frozen=True)
class SchedulesArgs:
    """The platform image, KFP's in-cluster API (where the recurring run lives) and the stack's schedules."""

    namespace: str
    image: str
    kfp_host: str
    config: SchedulesConfig = field(default_factory=SchedulesConfig)
    source_password: pulumi.Output[str] | None = None  # the ingest source's, a Pulumi secret


def ingest_command(cfg: IngestSchedule) -> list[str]:
    """Ingest from the source, then apply and materialize incrementally; `&&`: a failed ingest fails the run."""
    ingest = ["aicash", "data", "ingest", "--from", cfg.source]
    options = [("--table", cfg.table), ("--query", cfg.query), ("--symbol", cfg.symbol),
               ("--timeframe", cfg.timeframe), *(("--column", column) for column in cfg.columns)]
    ingest += [part for flag, value in options if value for part in (flag, value)]
    script = f"{shlex.join(ingest)} && aicash features apply && aicash features materialize --incremental"
    return ["sh", "-c", script]


def signal_weights_command(cfg: SignalWeightsSchedule) -> list[str]:
    symbols = [part for symbol in cfg.symbols for part in ("--symbol", symbol)]
    trades = ["--use-trades"] if cfg.use_trades else []
    return ["aicash", "pipeline", "run", "signal-weights", *symbols, "--timeframe", cfg.timeframe, *trades]


def training_command(cfg: TrainingSchedule, kfp_host: str, image: str) -> list[str]:
    """`schedule --reconcile` for the declared recurring run; turned off, `--off` deletes it from KFP."""
    command = ["aicash", "pipeline", "schedule", "lstm-training", "--reconcile", "--name", cfg.name,
               "--host", kfp_host, "--image", image]
    if not cfg.enabled:
        return [*command, "--off"]
    symbols = [part for symbol in cfg.symbols for part in ("--symbol", symbol)]
    cron = CRON_MACROS.get(cfg.schedule.strip(), cfg.schedule)  # the CLI takes fields, KFP has no macros
    return [*command, "--cron", cron, *symbols, "--timeframe", cfg.timeframe]


def cron_jobs(cfg: SchedulesConfig) -> list[MonitoringJob]:
    """The enabled CronJobs (pure, so tests can read the commands); a turned-off job has no object."""
    jobs = []
    if cfg.ingest.enabled:  # the next bar is an hour away: one retry for a passing fault
        jobs.append(MonitoringJob(INGEST_JOB, cfg.ingest.schedule, ingest_command(cfg.ingest), retries=1))
    if cfg.signal_weights.enabled:
        jobs.append(MonitoringJob(SIGNAL_WEIGHTS_JOB, cfg.signal_weights.schedule,
                                  signal_weights_command(cfg.signal_weights), retries=1))
    return jobs


def schedule_spec(job: MonitoringJob, image: str, env: list[kube.Obj] | None = None) -> kube.Obj:
    """The monitoring jobs' CronJob (Forbid, history limits, limits, UTC) labelled for this component, with `env`
    added to its container."""
    spec = cron_job_spec(job, image)
    labels = kube.labels(job.name, COMPONENT, client=True)
    template = spec["jobTemplate"]
    template["metadata"]["labels"] = labels
    template["spec"]["template"]["metadata"]["labels"] = labels
    if env:
        [container] = template["spec"]["template"]["spec"]["containers"]
        container["env"] = env
    return spec


def password_env() -> list[kube.Obj]:
    """PGPASSWORD from the Secret `aicash-ingest-source`."""
    return [{"name": PASSWORD_ENV, "valueFrom": {"secretKeyRef": {"name": INGEST_SECRET, "key": PASSWORD_ENV}}}]


def training_job_name(command: list[str]) -> str:
    return f"{TRAINING_JOB}-{hashlib.sha256(json.dumps(command).encode()).hexdigest()[:10]}"


def training_job_spec(name: str, command: list[str], image: str) -> kube.Obj:
    """A Job that retries while KFP's API comes up, within Pulumi's 10-minute wait."""
    step = kube.container("reconcile", image, Resources("100m", "384Mi", "1", "1Gi"), command=command,
                          env_from=kube.platform_env(), mounts=[kube.home_mount()])
    labels = kube.labels(name, COMPONENT, client=True)
    return {
        "backoffLimit": 4,  # 10 s, 20 s, 40 s, 80 s between attempts
        "activeDeadlineSeconds": 540,
        "template": {
            "metadata": {"labels": labels},
            "spec": kube.pod_spec([step], run_as_user=kube.PLATFORM_UID, volumes=[kube.home_volume()],
                                  restart_policy="Never"),
        },
    }


def ingest_egress_spec(cfg: IngestSchedule) -> kube.Obj:
    """Egress from the ingest job's pods to the source's CIDRs on its port."""
    return {
        "podSelector": {"matchLabels": kube.selector(INGEST_JOB)},
        "policyTypes": ["Egress"],
        "egress": [{"to": [{"ipBlock": {"cidr": cidr}} for cidr in cfg.source_cidrs],
                    "ports": [{"protocol": "TCP", "port": cfg.source_port}]}],
    }


class Schedules(Component):
    """The ingestion and signal-weight CronJobs, the Job reconciling KFP's recurring training run, and the
    ingest job's egress to an outside source."""

    def __init__(self, name: str, args: SchedulesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicash:schedules:Schedules", name, opts)
        cfg = args.config
        jobs = cron_jobs(cfg)
        secret = cfg.ingest.enabled and args.source_password is not None
        if secret:
            k8s.core.v1.Secret(
                f"{name}-{INGEST_SECRET}",
                metadata=kube.meta(INGEST_SECRET, args.namespace, COMPONENT),
                type="Opaque",
                string_data={PASSWORD_ENV: args.source_password},
                opts=self.child_opts(),
            )
        for job in jobs:
            env = password_env() if secret and job.name == INGEST_JOB else None
            if job.name == SIGNAL_WEIGHTS_JOB:
                env = TRAINING_LOGIN
            k8s.batch.v1.CronJob(
                f"{name}-{job.name}",
                metadata=kube.meta(job.name, args.namespace, COMPONENT, client=True),
                spec=schedule_spec(job, args.image, env),
                opts=self.child_opts(),
            )
        command = training_command(cfg.training, args.kfp_host, args.image)
        training = training_job_name(command)
        k8s.batch.v1.Job(
            f"{name}-{TRAINING_JOB}",
            metadata=kube.meta(training, args.namespace, COMPONENT, client=True),
            spec=training_job_spec(training, command, args.image),
            opts=self.child_opts(),
        )
        if cfg.ingest.enabled and cfg.ingest.source_cidrs:
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{INGEST_EGRESS_POLICY}",
                metadata=kube.meta(INGEST_EGRESS_POLICY, args.namespace, "network"),
                spec=ingest_egress_spec(cfg.ingest),
                opts=self.child_opts(),
            )
        self.register_outputs({"cron_jobs": [job.name for job in jobs], "training_job": training})
