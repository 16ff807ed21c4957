"""`Migrations`: a Job that runs `aicash db upgrade` with the release's platform image, as the owner, then
`aicash db grant-logins`: each workload's login (URLs from Secret `aicash-database-logins`) in its role.

The Job's name carries the image tag, so every release (and every rollback to an older tag) runs the
migrations of its own code once. Pulumi waits for the Job to complete; the services depend on this
component, so they start only against a schema at head.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from infra import kube
from infra.component import Component
from infra.config import Resources
from infra.database import LOGINS, login_env


@dataclass(frozen=True)
class MigrationsArgs:
    """The platform image (repository:tag) and the tag it carries."""

    namespace: str
    image: str
    image_tag: str


def job_name(image_tag: str) -> str:
    return f"aicash-db-upgrade-{kube.slug(image_tag)}"


class Migrations(Component):
    """One Job per image tag; `job` is what the services depend on."""

    job: k8s.batch.v1.Job

    def __init__(self, name: str, args: MigrationsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicash:database:Migrations", name, opts)
        upgrade = kube.container(
            "db-upgrade",
            args.image,
            Resources("100m", "256Mi", "500m", "512Mi"),
            command=["sh", "-c", "aicash db upgrade && aicash db grant-logins"],
            env=login_env(*((variable, variable) for variable in LOGINS)),
            env_from=kube.platform_env(),
            mounts=[kube.home_mount()],
        )
        job = job_name(args.image_tag)
        self.job = k8s.batch.v1.Job(
            f"{name}-job",
            metadata=kube.meta(job, args.namespace, "migrations", client=True),
            spec={
                "backoffLimit": 2,
                "activeDeadlineSeconds": 540,  # inside Pulumi's 10-minute wait for a Job
                "template": {
                    "metadata": {"labels": kube.labels(job, "migrations", client=True)},
                    "spec": kube.pod_spec(
                        [upgrade],
                        run_as_user=kube.PLATFORM_UID,
                        volumes=[kube.home_volume()],
                        restart_policy="Never",
                    ),
                },
            },
            opts=self.child_opts(),
        )
        self.register_outputs({"job": job})
