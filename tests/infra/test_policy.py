"""The policy pack passes on both stacks and fails on a resource made to break each rule."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.policy import rules
from infra.render import RecordingMocks, unwrap
from tests.support.infra import find

Resources = list[tuple[str, str, dict[str, Any]]]


def _resources(program: RecordingMocks) -> Resources:
    return [(r.typ, r.name, unwrap(r.inputs)) for r in program.records]


def _opts() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], False, [], PolicyCustomTimeouts(0, 0, 0), [])


def violations(resources: Resources) -> list[str]:
    """Run every policy of the pack the way the Pulumi engine would."""
    found: list[str] = []

    def report(message: str, urn: str | None = None) -> None:
        found.append(message)

    for policy in rules.POLICIES:
        if isinstance(policy, ResourceValidationPolicy):
            for typ, name, props in resources:
                policy.validate(ResourceValidationArgs(typ, props, f"urn:{name}", name, _opts(), None), report)
        elif isinstance(policy, StackValidationPolicy):
            stack = [PolicyResource(t, p, f"urn:{n}", n, _opts(), None, None, [], {}) for t, n, p in resources]
            policy.validate(StackValidationArgs(stack), report)
    return found


@pytest.fixture
def resources(program: RecordingMocks) -> Resources:
    return _resources(program)


def _workload(resources: Resources, kind: str, name: str) -> dict[str, Any]:
    return find([p for _, _, p in resources if "kind" in p], kind, name)


def test_the_pack_is_well_formed() -> None:
    names = [p.name for p in rules.POLICIES]
    assert len(names) == len(set(names)) == 6
    assert all(p.enforcement_level == EnforcementLevel.MANDATORY for p in rules.POLICIES)
    pack = yaml.safe_load(Path("infra/policy/PulumiPolicy.yaml").read_text())
    assert pack["runtime"]["name"] == "python"


def test_both_stacks_pass(resources: Resources) -> None:
    assert violations(resources) == []


def test_prod_actually_has_the_guarded_aws_resources(programs: dict[str, RecordingMocks]) -> None:
    types = {typ for typ, _, _ in _resources(programs["prod"])}
    assert {"aws:rds/instance:Instance", "aws:s3/bucket:Bucket"} <= types


def _break_inference(resources: Resources, change) -> list[str]:  # type: ignore[no-untyped-def]
    broken = copy.deepcopy(resources)
    obj = _workload(broken, "Deployment", "aicash-inference")
    change(obj["spec"]["template"]["spec"], obj["spec"]["template"]["spec"]["containers"][0])
    return violations(broken)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda pod, c: c["resources"].pop("limits"), "no limits for cpu, memory"),
        (lambda pod, c: c["resources"]["requests"].pop("memory"), "no requests for memory"),
        (lambda pod, c: c.pop("readinessProbe"), "no readinessProbe"),
        (lambda pod, c: c.pop("livenessProbe"), "no livenessProbe"),
        (lambda pod, c: (c.pop("securityContext"), pod.pop("securityContext")), "may run as root"),
        (lambda pod, c: c["securityContext"].update(runAsNonRoot=False), "may run as root"),
        (lambda pod, c: pod["securityContext"].update(runAsUser=0, runAsNonRoot=None), "may run as root"),
        (lambda pod, c: c.update(image="ghcr.io/aicash/aicash-signal:latest"), "unpinned image"),
        (lambda pod, c: c.update(image="localhost:5001/aicash-signal"), "unpinned image"),
    ],
)
def test_container_rules_catch_a_broken_deployment(resources: Resources, change, expected: str) -> None:  # type: ignore[no-untyped-def]
    found = violations(resources) + _break_inference(resources, change)
    assert len(found) == 1 and expected in found[0], found


def test_jobs_need_no_probes_but_everything_else(resources: Resources) -> None:
    cron = _workload(resources, "CronJob", "aicash-health-check")
    assert "livenessProbe" not in str(cron)
    assert rules.check_probes(cron) == []
    cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox"
    assert rules.check_pinned_images(cron)


def test_third_party_workloads_are_exempt_only_when_labelled(resources: Resources) -> None:
    api = _workload(resources, "Deployment", "ml-pipeline")
    assert rules.check_probes(api) == []
    api["metadata"]["labels"].pop(rules.THIRD_PARTY_LABEL)
    assert rules.check_probes(api)


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("postgres:16.4-bookworm", True),
        ("localhost:5001/aicash-platform:0.1.0", True),
        ("ghcr.io/x/y@sha256:" + "a" * 64, True),
        ("localhost:5001/aicash-platform", False),
        ("postgres", False),
        ("postgres:latest", False),
    ],
)
def test_image_is_pinned(image: str, pinned: bool) -> None:
    assert rules.image_is_pinned(image) is pinned


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("storageEncrypted", False, "not encrypted"),
        ("publiclyAccessible", True, "publicly accessible"),
        ("backupRetentionPeriod", 0, "backups"),
    ],
)
def test_database_rule(programs: dict[str, RecordingMocks], field: str, value: Any, expected: str) -> None:
    broken = _resources(programs["prod"])
    next(p for t, _, p in broken if t == "aws:rds/instance:Instance")[field] = value
    found = violations(broken)
    assert len(found) == 1 and expected in found[0]


@pytest.mark.parametrize(
    ("typ", "change", "expected"),
    [
        (
            "aws:s3/bucketVersioning:BucketVersioning",
            lambda p: p.update(versioningConfiguration={"status": "Suspended"}),
            "not versioned",
        ),
        (
            "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
            lambda p: p.update(restrictPublicBuckets=False),
            "not private",
        ),
        (rules.ENCRYPTION_TYPE, lambda p: p.update(rules=[]), "not encrypted"),
        ("aws:s3/bucket:Bucket", lambda p: p.update(acl="public-read"), "public ACL"),
    ],
)
def test_bucket_rule(programs: dict[str, RecordingMocks], typ: str, change, expected: str) -> None:  # type: ignore[no-untyped-def]
    broken = _resources(programs["prod"])
    change(next(p for t, _, p in broken if t == typ))
    found = violations(broken)
    assert len(found) == 1 and expected in found[0] and "aicash-prod-models" in found[0]


def test_a_bucket_without_its_settings_fails_every_bucket_check() -> None:
    found = rules.check_buckets([("aws:s3/bucket:Bucket", {"bucket": "bare"})])
    assert len(found["bare"]) == 3
