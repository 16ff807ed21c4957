"""Production hygiene rules for the aicash stacks, as plain functions plus the pulumi-policy wrappers.

Each `check_*` function takes a resource's properties (camelCase, as Pulumi passes them) and returns the
violations as messages, so tests call them directly; `POLICIES` wraps them for `PulumiPolicy.yaml`.
This module imports nothing from the program: `pulumi preview --policy-pack infra/policy` loads it alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

Props = Mapping[str, Any]
# Upstream manifests (Kubeflow Pipelines) carry this label; they are vetted upstream, not by these rules.
THIRD_PARTY_LABEL = "aicash.io/third-party"
MIN_BACKUP_RETENTION_DAYS = 7
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
RUN_TO_COMPLETION = {"Job", "CronJob"}
BUCKET_TYPES = {"aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2"}
ENCRYPTION_TYPE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"


def pod_spec(props: Props) -> Props | None:
    """The pod template of a workload object, or None for anything else."""
    path = POD_SPEC_PATHS.get(str(props.get("kind")))
    node: Any = props
    for key in path or ():
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if path and isinstance(node, Mapping) else None


def _containers(props: Props) -> list[tuple[Props, bool]]:
    """(container, is_init) for a workload that is not exempt; [] otherwise."""
    labels = (props.get("metadata") or {}).get("labels") or {}
    pod = pod_spec(props)
    if pod is None or THIRD_PARTY_LABEL in labels:
        return []
    return [(c, True) for c in pod.get("initContainers") or []] + [(c, False) for c in pod.get("containers") or []]


def check_resources(props: Props) -> list[str]:
    """Every container sets CPU and memory requests and limits."""
    out = []
    for container, _ in _containers(props):
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            missing = [r for r in ("cpu", "memory") if not (resources.get(kind) or {}).get(r)]
            if missing:
                out.append(f"container {container.get('name')!r} has no {kind} for {', '.join(missing)}")
    return out


def check_probes(props: Props) -> list[str]:
    """Every long-running container has liveness and readiness probes (Jobs and CronJobs are exempt)."""
    if props.get("kind") in RUN_TO_COMPLETION:
        return []
    out = []
    for container, is_init in _containers(props):
        for probe in ("livenessProbe", "readinessProbe"):
            if not is_init and not container.get(probe):
                out.append(f"container {container.get('name')!r} has no {probe}")
    return out


def _effective(field: str, container: Props, pod: Props) -> Any:
    """A security setting as Kubernetes applies it: the container's, else the pod's."""
    own = (container.get("securityContext") or {}).get(field)
    return own if own is not None else (pod.get("securityContext") or {}).get(field)


def check_non_root(props: Props) -> list[str]:
    """Every container must run as non-root: runAsNonRoot true and no uid 0, at container or pod level."""
    pod = pod_spec(props) or {}
    return [
        f"container {container.get('name')!r} may run as root (set runAsNonRoot: true and a non-zero runAsUser)"
        for container, _ in _containers(props)
        if _effective("runAsNonRoot", container, pod) is not True or _effective("runAsUser", container, pod) == 0
    ]


def image_is_pinned(image: str) -> bool:
    """A digest, or a tag other than `latest`; the tag is what follows the last ':' after the last '/'."""
    if "@sha256:" in image:
        return True
    name = image.rsplit("/", 1)[-1]
    tag = name.rsplit(":", 1)[1] if ":" in name else ""
    return bool(tag) and tag != "latest"


def check_pinned_images(props: Props) -> list[str]:
    """Every image names a fixed tag or a digest."""
    return [
        f"container {c.get('name')!r} uses unpinned image {c.get('image')!r}"
        for c, _ in _containers(props)
        if not image_is_pinned(str(c.get("image") or ""))
    ]


def check_database(props: Props) -> list[str]:
    """An RDS instance is encrypted, not publicly reachable and keeps at least a week of backups."""
    out = []
    if props.get("storageEncrypted") is not True:
        out.append("storage is not encrypted (storageEncrypted: true)")
    if props.get("publiclyAccessible") is True:
        out.append("the instance is publicly accessible")
    if int(props.get("backupRetentionPeriod") or 0) < MIN_BACKUP_RETENTION_DAYS:
        out.append(f"backups are kept fewer than {MIN_BACKUP_RETENTION_DAYS} days (backupRetentionPeriod)")
    return out


def _by_bucket(resources: Iterable[tuple[str, Props]], typ: str) -> dict[str, Props]:
    return {str(props.get("bucket")): props for t, props in resources if t == typ}


def check_buckets(resources: Iterable[tuple[str, Props]]) -> dict[str, list[str]]:
    """Each S3 bucket (by name) is private, encrypted and versioned; its settings are separate resources
    in the AWS provider, matched by their `bucket` property. Returns the violations by bucket name."""
    items = list(resources)
    blocks = _by_bucket(items, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    encryption = _by_bucket(items, ENCRYPTION_TYPE)
    versioning = _by_bucket(items, "aws:s3/bucketVersioning:BucketVersioning")
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    out: dict[str, list[str]] = {}
    for typ, props in items:
        if typ not in BUCKET_TYPES:
            continue
        name, problems = str(props.get("bucket")), []
        if str(props.get("acl") or "private").startswith("public"):
            problems.append("has a public ACL")
        if not all((blocks.get(name) or {}).get(flag) is True for flag in flags):
            problems.append("is not private (a BucketPublicAccessBlock with all four flags true)")
        rules = (encryption.get(name) or {}).get("rules") or []
        if not any((r.get("applyServerSideEncryptionByDefault") or {}).get("sseAlgorithm") for r in rules):
            problems.append("is not encrypted by default (BucketServerSideEncryptionConfiguration)")
        status = ((versioning.get(name) or {}).get("versioningConfiguration") or {}).get("status")
        if status != "Enabled":
            problems.append("is not versioned (BucketVersioning status Enabled)")
        if problems:
            out[name] = problems
    return out


def _kubernetes(check: Callable[[Props], list[str]]) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if args.resource_type.startswith("kubernetes:"):
            for message in check(args.props):
                report(message, None)

    return validate


def _rds(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == "aws:rds/instance:Instance":
        for message in check_database(args.props):
            report(message, None)


def _buckets(args: StackValidationArgs, report: ReportViolation) -> None:
    resources = list(args.resources)
    found = check_buckets((r.resource_type, r.props) for r in resources)
    urns = {str(r.props.get("bucket")): r.urn for r in resources if r.resource_type in BUCKET_TYPES}
    for name, problems in found.items():
        for problem in problems:
            report(f"bucket {name!r} {problem}", urns.get(name))


MANDATORY = EnforcementLevel.MANDATORY
POLICIES = [
    ResourceValidationPolicy(
        "containers-have-requests-and-limits",
        "Every container sets CPU and memory requests and limits.",
        _kubernetes(check_resources),
        MANDATORY,
    ),
    ResourceValidationPolicy(
        "containers-have-probes",
        "Every long-running container has liveness and readiness probes (Jobs and CronJobs exempt).",
        _kubernetes(check_probes),
        MANDATORY,
    ),
    ResourceValidationPolicy(
        "containers-run-as-non-root", "Every container runs as a non-root user.", _kubernetes(check_non_root), MANDATORY
    ),
    ResourceValidationPolicy(
        "images-are-pinned",
        "Every image has a fixed tag or digest (no `latest`, no missing tag).",
        _kubernetes(check_pinned_images),
        MANDATORY,
    ),
    ResourceValidationPolicy(
        "database-is-encrypted-private-and-backed-up",
        "RDS: storage encrypted, not publicly accessible, backups kept at least a week.",
        _rds,
        MANDATORY,
    ),
    StackValidationPolicy(
        "bucket-is-private-encrypted-and-versioned",
        "S3: public access blocked, default encryption, versioning enabled.",
        _buckets,
        MANDATORY,
    ),
]
