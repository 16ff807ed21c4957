"""`Monitoring`: the CronJobs that watch the live model, and the alert rules for the cluster's Prometheus.

- `aicash-drift-report`: `aicash monitor drift --email`, plus `--retrain` (on by default) so that drift submits
  the training pipeline to Kubeflow Pipelines (KFP_HOST and KFP_IMAGE come from the platform settings).
- `aicash-health-check`: `aicash monitor check --email`, scraping the inference Service inside the cluster
  rather than the public URL. A Service sends each scrape to one replica, so the latency rule judges that
  replica's histogram since it started; `--sample-seconds` is left off because its two scrapes could reach
  two different replicas.
- `aicash-canary-judge`: `aicash monitor canary --apply`: promotes or ends a canary on its live results.
  With no canary serving the command exits 2 ("no canary is serving"); the job counts that as success.
- `aicash-kfp-sync` (every 5 minutes; `kfpSync: false` turns it off): `aicash pipeline status`, which reads the
  open training runs' outcomes from KFP's in-cluster API (KFP_HOST, from the platform settings) into
  `training_runs`, so `/training-status` and the training-failure alert see a run that failed on the cluster.
- ConfigMap `aicash-alert-rules`: `monitoring/alerts.yml`, the same rules as Prometheus alerting rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from infra import kube
from infra.component import Component
from infra.config import MonitoringConfig, Resources
from infra.database import login_env

DRIFT_JOB = "aicash-drift-report"
CHECK_JOB = "aicash-health-check"
CANARY_JOB = "aicash-canary-judge"
KFP_SYNC_JOB = "aicash-kfp-sync"
ALERT_RULES = "aicash-alert-rules"
ALERT_RULES_KEY = "alerts.yml"
ALERT_RULES_FILE = Path(__file__).resolve().parent.parent / "monitoring" / "alerts.yml"
NO_CANARY = "no canary is serving"  # `aicash monitor canary`'s message when there is nothing to judge
# Every monitoring job logs in as the monitoring login (aicash_monitoring), not the owner.
MONITORING_LOGIN = login_env(("DATABASE_URL", "MONITORING_DATABASE_URL"))


@dataclass(frozen=True)
class MonitoringArgs:
    """The platform image, the inference service's in-cluster /metrics URL, the schedules, the rules file."""

    namespace: str
    image: str
    metrics_url: str
    config: MonitoringConfig = field(default_factory=MonitoringConfig)
    alert_rules_file: Path = ALERT_RULES_FILE


@dataclass(frozen=True)
class MonitoringJob:
    """One CronJob: `retries` is the Job's backoffLimit (0 where a rerun would mail the same alert again)."""

    name: str
    schedule: str
    command: list[str]
    retries: int


def canary_command(apply: bool) -> list[str]:
    """`aicash monitor canary`, with "no canary is serving" (exit 2) turned into success: it is the usual state."""
    judge = "aicash monitor canary" + (" --apply" if apply else "")
    script = (
        f'out="$({judge} 2>&1)"; rc=$?; printf "%s\\n" "$out"; '
        f'if [ "$rc" -eq 2 ] && printf "%s" "$out" | grep -q "{NO_CANARY}"; then exit 0; fi; exit "$rc"'
    )
    return ["sh", "-c", script]


def jobs(args: MonitoringArgs) -> list[MonitoringJob]:
    """The monitoring CronJobs of this stack (pure, so tests can read the commands)."""
    cfg = args.config
    drift = ["aicash", "monitor", "drift", "--email", *(["--retrain"] if cfg.retrain_on_drift else [])]
    check = ["aicash", "monitor", "check", "--email", "--metrics-url", args.metrics_url]
    scheduled = [
        MonitoringJob(DRIFT_JOB, cfg.drift_schedule, drift, retries=1),
        MonitoringJob(CHECK_JOB, cfg.check_schedule, check, retries=0),
        MonitoringJob(CANARY_JOB, cfg.canary_schedule, canary_command(cfg.canary_apply), retries=0),
    ]
    if cfg.kfp_sync:  # KFP_HOST comes from the platform settings; the next run is minutes away: no retry
        sync = ["aicash", "pipeline", "status"]
        scheduled.append(MonitoringJob(KFP_SYNC_JOB, cfg.kfp_sync_schedule, sync, retries=0))
    return scheduled


def cron_job_spec(job: MonitoringJob, image: str, env: list[kube.Obj] | None = None) -> kube.Obj:
    """A CronJob that never overlaps itself and keeps a short history; `env` goes over the platform settings
    (e.g. DATABASE_URL of the job's own login)."""
    step = kube.container(
        "job",
        image,
        Resources("250m", "512Mi", "1", "1536Mi"),
        command=job.command,
        env=env,
        env_from=kube.platform_env(),
        mounts=[kube.home_mount()],
    )
    pod = kube.pod_spec([step], run_as_user=kube.PLATFORM_UID, volumes=[kube.home_volume()], restart_policy="Never")
    labels = kube.labels(job.name, "monitoring", client=True)
    return {
        "schedule": job.schedule,
        "timeZone": "Etc/UTC",
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": 300,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 3,
        "jobTemplate": {
            "metadata": {"labels": labels},
            "spec": {
                "backoffLimit": job.retries,
                "activeDeadlineSeconds": 1800,
                "template": {"metadata": {"labels": labels}, "spec": pod},
            },
        },
    }


class Monitoring(Component):
    """The drift report, alert check, canary and KFP sync CronJobs, and the alert rules as a ConfigMap."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicash:monitoring:Monitoring", name, opts)
        scheduled = jobs(args)
        for job in scheduled:
            k8s.batch.v1.CronJob(
                f"{name}-{job.name}",
                metadata=kube.meta(job.name, args.namespace, "monitoring", client=True),
                spec=cron_job_spec(job, args.image, MONITORING_LOGIN),
                opts=self.child_opts(),
            )
        # For a Prometheus that loads rule files: mount it into `rule_files`. Nothing in the cluster reads it
        # by itself; with the Prometheus Operator, wrap its `groups` in a PrometheusRule instead.
        k8s.core.v1.ConfigMap(
            f"{name}-{ALERT_RULES}",
            metadata=kube.meta(ALERT_RULES, args.namespace, "monitoring"),
            data={ALERT_RULES_KEY: args.alert_rules_file.read_text(encoding="utf-8")},
            opts=self.child_opts(),
        )
        self.register_outputs({"jobs": [job.name for job in scheduled], "alert_rules": ALERT_RULES})
