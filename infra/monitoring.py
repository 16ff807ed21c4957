"""`Monitoring`: CronJobs for the drift report (mailed) and the periodic health check."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from infra import kube
from infra.component import Component
from infra.config import MonitoringConfig, Resources

# (object name, schedule attribute of MonitoringConfig, command)
JOBS: tuple[tuple[str, str, list[str]], ...] = (
    ("aicash-drift-report", "drift_schedule", ["aicash", "monitor", "drift", "--email"]),
    ("aicash-health-check", "check_schedule", ["aicash", "monitor", "check"]),
)


@dataclass(frozen=True)
class MonitoringArgs:
    """The platform image and the schedules."""

    namespace: str
    image: str
    config: MonitoringConfig = field(default_factory=MonitoringConfig)


def cron_job_spec(name: str, schedule: str, image: str, command: list[str]) -> kube.Obj:
    """A CronJob that never overlaps itself and keeps a short history."""
    step = kube.container(
        "job",
        image,
        Resources("250m", "512Mi", "1", "1536Mi"),
        command=command,
        env_from=kube.platform_env(),
        mounts=[kube.home_mount()],
    )
    pod = kube.pod_spec([step], run_as_user=kube.PLATFORM_UID, volumes=[kube.home_volume()], restart_policy="Never")
    return {
        "schedule": schedule,
        "timeZone": "Etc/UTC",
        "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": 300,
        "successfulJobsHistoryLimit": 3,
        "failedJobsHistoryLimit": 3,
        "jobTemplate": {
            "metadata": {"labels": kube.labels(name, "monitoring", client=True)},
            "spec": {
                "backoffLimit": 1,
                "activeDeadlineSeconds": 1800,
                "template": {"metadata": {"labels": kube.labels(name, "monitoring", client=True)}, "spec": pod},
            },
        },
    }


class Monitoring(Component):
    """`aicash monitor drift --email` and `aicash monitor check` on their schedules."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicash:monitoring:Monitoring", name, opts)
        for job, schedule_field, command in JOBS:
            k8s.batch.v1.CronJob(
                f"{name}-{job}",
                metadata=kube.meta(job, args.namespace, "monitoring", client=True),
                spec=cron_job_spec(job, getattr(args.config, schedule_field), args.image, command),
                opts=self.child_opts(),
            )
        self.register_outputs({"jobs": [job for job, _, _ in JOBS]})
