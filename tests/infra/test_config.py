"""Stack configuration: typed, checked, unknown keys refused; components are well formed."""

from __future__ import annotations

import re

import pytest

from infra.config import ConfigError, SmtpConfig, StorageConfig, build, check_image_tag
from infra.render import RecordingMocks


def test_build_maps_camel_case_and_refuses_unknown_keys() -> None:
    assert build(StorageConfig, {"bucket": "b", "storageGb": 3}, "storage") == StorageConfig(bucket="b", storage_gb=3)
    assert build(SmtpConfig, {"from": "a@x", "to": "b@x"}, "smtp").recipients == "b@x"
    with pytest.raises(ConfigError, match="aicash:storage: unknown field 'bukket'"):
        build(StorageConfig, {"bukket": "b"}, "storage")


@pytest.mark.parametrize("tag", ["latest", "", "bad tag", "-x"])
def test_moving_or_malformed_tags_are_refused(tag: str) -> None:
    with pytest.raises(ConfigError):
        check_image_tag(tag)


def test_release_tags_are_accepted() -> None:
    assert check_image_tag("0.1.0") == "0.1.0"
    assert check_image_tag("sha-3f2a9c1") == "sha-3f2a9c1"


def test_components_own_everything_the_stack_creates(program: RecordingMocks) -> None:
    """Top-level resources are aicash components (`aicash:<area>:<Name>`); everything else is a child."""
    components = {r.typ for r in program.records if r.typ.startswith("aicash:")}
    assert all(re.fullmatch(r"aicash:[a-z]+:[A-Z][A-Za-z]+", t) for t in components)
    assert {"aicash:cluster:Cluster", "aicash:database:Database", "aicash:storage:ObjectStore",
            "aicash:pipelines:KubeflowPipelines", "aicash:features:FeatureServer",
            "aicash:serving:InferenceService", "aicash:monitoring:Monitoring",
            "aicash:database:Migrations", "aicash:network:NetworkPolicies"} <= components  # fmt: skip
    top_level = [u for u in program.urns if "::pulumi:pulumi:Stack$" in u]
    assert top_level and all("::pulumi:pulumi:Stack$aicash:" in u for u in top_level)
