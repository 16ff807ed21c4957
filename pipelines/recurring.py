"""Recurring runs on a KFP server kept equal to a declared spec: find one by display name, create, delete.

KFP's v2beta1 API has no update for a recurring run, so a changed spec is a new recurring run and the old one is
deleted. Whether the one on the server is current is told by a fingerprint (SHA-256 of the compiled pipeline,
the cron expression and the parameters) kept in its description: no field-by-field comparison with what the
server echoes back.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines import runner

MANAGED = "managed by `aicash pipeline schedule --reconcile`"
PAGE_SIZE = 100


@dataclass(frozen=True)
class RecurringSpec:
    """A recurring run as declared: its display name on KFP, the pipeline, KFP's six-field cron, the parameters,
    the platform image and each run's deadline."""

    display_name: str
    pipeline: str
    cron: str
    arguments: dict[str, Any]
    image: str
    timeout_seconds: int
    experiment: str = "aicash"

    def package(self) -> str:
        """The compiled pipeline (IR YAML) for this image and deadline: a file path kfp.Client accepts."""
        return runner._package(self.pipeline, self.image, self.timeout_seconds)

    @staticmethod
    def fingerprint(package: str, cron: str, arguments: dict[str, Any]) -> str:
        """What the server's copy must match: the compiled pipeline, the cron expression and the parameters."""
        digest = hashlib.sha256(Path(package).read_bytes())
        digest.update(json.dumps({"cron": cron, "arguments": arguments}, sort_keys=True).encode())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Found:
    """A recurring run on the server with the declared display name."""

    recurring_run_id: str
    description: str
    enabled: bool

    def matches(self, fingerprint: str) -> bool:
        return self.enabled and f"spec {fingerprint}" in self.description


def description(fingerprint: str) -> str:
    return f"{MANAGED}; spec {fingerprint}"


def find(host: str, display_name: str, experiment: str = "aicash") -> list[Found]:
    """Every recurring run of `experiment` named `display_name` (KFP allows several with one name)."""
    client = runner.client(host)
    experiment_id = client.create_experiment(name=experiment).experiment_id  # get or create, like `schedule`
    wanted = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": display_name}]})
    found: list[Found] = []
    token = ""
    while True:
        page = client.list_recurring_runs(page_token=token, page_size=PAGE_SIZE, experiment_id=experiment_id,
                                          filter=wanted)
        for run in page.recurring_runs or []:
            if run.display_name == display_name:  # the server filters; checked again all the same
                found.append(Found(str(run.recurring_run_id), run.description or "", str(run.mode) == "ENABLE"))
        token = page.next_page_token or ""
        if not token:
            return found


def create(host: str, spec: RecurringSpec, package: str, fingerprint: str) -> str:
    """Create the recurring run (one run at a time, no catch-up after a pause); returns its id."""
    client = runner.client(host)
    experiment_id = client.create_experiment(name=spec.experiment).experiment_id
    job = client.create_recurring_run(
        experiment_id=experiment_id, job_name=spec.display_name, description=description(fingerprint),
        cron_expression=spec.cron, pipeline_package_path=package, params=spec.arguments, enable_caching=True,
        max_concurrency=1, no_catchup=True,
    )
    return str(job.recurring_run_id)


def delete(host: str, recurring_run_id: str) -> None:
    runner.client(host).delete_recurring_run(recurring_run_id)
