"""Run the Pulumi program without a cluster or the Pulumi CLI and write the Kubernetes objects it creates.

Pulumi's mocks (`pulumi.runtime.set_mocks`) receive every resource the program registers, with its inputs
exactly as a provider would: camelCase, `apiVersion` and `kind` filled in. `run_program` records them;
`render` writes each Kubernetes object as YAML, one file per object, with numbers as integers and every
secret value redacted. Kustomize directories fetched from the network at `pulumi up` (the upstream KFP
manifests) and Helm releases are not expanded offline; `render` lists them instead.

Pulumi's runtime settings are process-global: `run_program` resets them on every call, so calls can
follow each other in one process, but never run concurrently.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import runpy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.mocks import MockMonitor
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra.config import PROJECT, SECRET_KEYS

# Pulumi's marker for a secret value on the wire
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # noqa: S105
REDACTED = "<redacted>"
STACKS = ("dev", "prod")
FAKE_ACCOUNT = "123456789012"
ROOT = Path()  # the Pulumi project (Pulumi.yaml, Pulumi.<stack>.yaml): the working folder, where Pulumi runs

Kustomize = Callable[[str], list[dict[str, Any]]]


@dataclass(frozen=True)
class Recorded:
    """One resource the program registered: Pulumi type token, logical name, inputs as sent."""

    typ: str
    name: str
    inputs: dict[str, Any]


@dataclass
class RenderResult:
    """The files written and what could not be expanded offline."""

    files: list[Path] = field(default_factory=list)
    not_expanded: list[str] = field(default_factory=list)


def placeholder(key: str) -> str:
    """The stand-in for a secret the stack file does not hold in plain text."""
    return f"render-placeholder-{key}"


def _fake_outputs(typ: str, name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The computed outputs the program reads from AWS resources, with recognisable fake values."""
    region = "eu-west-1"
    if typ == "aws:eks/cluster:Cluster":
        return {
            "endpoint": f"https://{name}.eks.example.invalid",
            "certificateAuthority": {"data": "ZmFrZS1jYQ=="},
            "identities": [{"oidcs": [{"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{name.upper()}"}]}],
            "vpcConfig": {**inputs.get("vpcConfig", {}), "clusterSecurityGroupId": f"sg-{name}-cluster"},
        }
    if typ == "aws:rds/instance:Instance":
        address = f"{inputs.get('identifier', name)}.fake.{region}.rds.amazonaws.com"
        return {"address": address, "port": 5432, "endpoint": f"{address}:5432"}
    if typ == "aws:s3/bucket:Bucket":
        return {"arn": f"arn:aws:s3:::{inputs.get('bucket', name)}"}
    if typ.startswith("aws:iam/"):
        return {"arn": f"arn:aws:iam::{FAKE_ACCOUNT}:{typ.split(':')[-1].lower()}/{name}", "name": name}
    if typ.startswith("aws:"):
        return {"arn": f"arn:aws:{typ.split(':')[1].split('/')[0]}:{region}:{FAKE_ACCOUNT}:{name}", "name": name}
    return {}


class RecordingMocks(pulumi.runtime.Mocks):
    """Records every registration; answers kustomize invokes from `kustomize` (nothing by default)."""

    def __init__(self, kustomize: Kustomize | None = None) -> None:
        self.records: list[Recorded] = []
        self.urns: list[str] = []
        self.dependencies: dict[str, list[str]] = {}
        self.directories: list[str] = []
        self._kustomize = kustomize

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.records.append(Recorded(args.typ, args.name, copy.deepcopy(args.inputs)))
        state = {**args.inputs, **_fake_outputs(args.typ, args.name, args.inputs)}
        resource_id = args.inputs.get("bucket") if args.typ == "aws:s3/bucket:Bucket" else f"{args.name}-id"
        return resource_id, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        if args.token == "kubernetes:kustomize:directory":  # noqa: S105 - an invoke token
            directory = args.args["directory"]
            self.directories.append(directory)
            return {"result": copy.deepcopy(self._kustomize(directory)) if self._kustomize else []}
        return {}


class RecordingMonitor(MockMonitor):
    """The mock monitor, also keeping each resource's dependencies (URNs) as the engine would see them."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.dependencies: dict[str, list[str]] = {}

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method's name
        response = super().RegisterResource(request)
        self.dependencies[response.urn] = list(request.dependencies)
        return response


def stack_config(
    stack: str,
    root: Path = ROOT,
    overrides: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> tuple[dict[str, str], list[str]]:
    """The stack file's config as Pulumi passes it (structured values as JSON), plus stand-in secrets."""
    raw = yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8")) or {}
    config: dict[str, str] = {}
    for key, value in (raw.get("config") or {}).items():
        if isinstance(value, dict) and "secure" in value:
            continue  # encrypted: only the Pulumi CLI can read it; a stand-in follows
        config[key] = value if isinstance(value, str) else json.dumps(value)
    for key, value in (overrides or {}).items():
        config[key if ":" in key else f"{PROJECT}:{key}"] = value
    cloud = config.get(f"{PROJECT}:cloud", "local")
    secret_keys = []
    for key in SECRET_KEYS.get(cloud, ()):
        full = f"{PROJECT}:{key}"
        config[full] = (secrets or {}).get(key, placeholder(key))
        secret_keys.append(full)
    return config, secret_keys


def run_program(
    stack: str,
    *,
    root: Path = ROOT,
    overrides: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
    kustomize: Kustomize | None = None,
) -> RecordingMocks:
    """Run `infra/__main__.py` for `stack` under fresh mocks; the mocks hold what was registered."""
    if stack not in STACKS:
        raise ValueError(f"unknown stack {stack!r}; expected one of {', '.join(STACKS)}")
    config, secret_keys = stack_config(stack, root, overrides, secrets)
    runtime_settings.ROOT.set(None)
    _ensure_event_loop()
    mocks = RecordingMocks(kustomize)
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(config, secret_keys)
    _sync_await(run_pulumi_func(lambda: runpy.run_module("infra", run_name="__main__")))
    mocks.urns = list(monitor.resources)
    mocks.dependencies = monitor.dependencies
    return mocks


def _ensure_event_loop() -> None:
    """Pulumi's runtime schedules on the thread's current event loop; an earlier `asyncio.run()` in the same
    process (a test, a notebook) leaves none, or a closed one."""
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())


def unwrap(value: Any) -> Any:
    """Plain values: secrets unwrapped, integral floats as ints (the mocks see every number as float)."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return unwrap(value.get("value"))
        return {key: unwrap(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unwrap(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def redact(value: Any) -> Any:
    """Like `unwrap`, but every secret becomes REDACTED."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return REDACTED
        return {key: redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return unwrap(value)


def is_kubernetes_object(record: Recorded) -> bool:
    return record.typ.startswith("kubernetes:") and "apiVersion" in record.inputs and "kind" in record.inputs


def _sorted(value: Any) -> Any:
    """Keys in a stable order, so two renders diff cleanly."""
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def manifest(record: Recorded, *, redacted: bool = True) -> dict[str, Any]:
    """The object as `kubectl apply` would take it; with `redacted`, no secret value survives and every
    value of a Secret is replaced (its keys stay, so the shape can still be validated)."""
    is_secret = record.inputs.get("kind") == "Secret"
    obj = unwrap(record.inputs) if is_secret or not redacted else redact(record.inputs)
    if redacted and is_secret:
        obj = {**redact(record.inputs), **{key: obj[key] for key in ("data", "stringData") if key in obj}}
        for key in ("data", "stringData"):
            if key in obj:
                obj[key] = dict.fromkeys(obj[key], REDACTED)
    obj = _sorted(obj)
    head = {key: obj.pop(key) for key in ("apiVersion", "kind", "metadata") if key in obj}
    return {**head, **obj}


def manifests(mocks: RecordingMocks, *, redacted: bool = True) -> list[dict[str, Any]]:
    return [manifest(r, redacted=redacted) for r in mocks.records if is_kubernetes_object(r)]


def file_name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    parts = [obj["kind"], meta.get("namespace") or "cluster", meta.get("name") or "unnamed"]
    return "_".join(re.sub(r"[^a-z0-9.-]+", "-", part.lower()) for part in parts) + ".yaml"


def render(
    stack: str,
    out_dir: Path,
    *,
    root: Path = ROOT,
    overrides: Mapping[str, str] | None = None,
    secrets: Mapping[str, str] | None = None,
) -> RenderResult:
    """Write every Kubernetes object of `stack` to `out_dir`, one YAML file each."""
    mocks = run_program(stack, root=root, overrides=overrides, secrets=secrets)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = RenderResult(not_expanded=list(mocks.directories))
    result.not_expanded += [
        f"helm chart {r.inputs.get('chart')} {r.inputs.get('version')}"
        for r in mocks.records
        if r.typ == "kubernetes:helm.sh/v3:Release"
    ]
    for obj in manifests(mocks):
        path = out_dir / file_name(obj)
        if path in result.files:
            raise ValueError(f"two objects render to {path.name}")
        path.write_text(yaml.safe_dump(obj, sort_keys=False, default_flow_style=False), encoding="utf-8")
        result.files.append(path)
    return result
