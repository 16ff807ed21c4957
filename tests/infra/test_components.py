"""Components on their own, the pulumi/examples testing-unit-py way: mocks first, then assertions on the
components' outputs through `Output.all(...).apply(check)`."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pulumi
import pytest
from pulumi.runtime import settings as runtime_settings

from infra.database import Database, DatabaseArgs
from infra.inference import InferenceService, InferenceServiceArgs
from infra.render import RecordingMocks


@pytest.fixture
def mocks() -> Iterator[RecordingMocks]:
    """Fresh mocks for one test; the global runtime is reset before and after."""
    runtime_settings.ROOT.set(None)
    recording = RecordingMocks()
    pulumi.runtime.set_mocks(recording, project="aicash", stack="unit", preview=False)
    yield recording
    runtime_settings.ROOT.set(None)


def test_database_url_is_a_secret_and_requires_tls_on_aws(mocks: RecordingMocks) -> None:
    @pulumi.runtime.test
    def check() -> pulumi.Output[None]:
        db = Database(
            "db",
            DatabaseArgs(cloud="aws", namespace="aicash", password=pulumi.Output.secret("pw"), identifier="unit"),
        )

        async def secret(out: pulumi.Output[str]) -> bool:
            return await out.is_secret()

        def verify(args: list[object]) -> None:
            url, host, is_secret = args
            assert is_secret
            parts = urlsplit(str(url))
            assert parts.hostname == host == "unit.fake.eu-west-1.rds.amazonaws.com"
            assert parts.query == "sslmode=require" and parts.password == "pw"

        return pulumi.Output.all(db.url, db.host, pulumi.Output.from_input(secret(db.url))).apply(verify)

    check()
    assert any(r.typ == "aws:rds/instance:Instance" for r in mocks.records)


def test_inference_service_children_are_parented_to_the_component(mocks: RecordingMocks) -> None:
    @pulumi.runtime.test
    def check() -> str:
        service = InferenceService("inference", InferenceServiceArgs(namespace="ns", image="repo/bento:1.0", host="h"))
        return service.url

    check()
    kinds = [r.inputs.get("kind") for r in mocks.records if r.typ.startswith("kubernetes:")]
    assert sorted(kinds) == ["Deployment", "HorizontalPodAutoscaler", "Ingress", "PodDisruptionBudget", "Service"]
    urns = [u for u in runtime_settings.SETTINGS.monitor.resources if "$kubernetes:" in u]
    assert len(urns) == 5 and all("::aicash:serving:InferenceService$kubernetes:" in u for u in urns)
