"""Fixtures for the Pulumi program: each stack run once under mocks, with known secrets.

Pulumi's runtime is process-global state. `infra.render.run_program` resets it on every call, and the
runs here happen one after another and keep only plain data (the recorded resources), so tests that run
the program again (the rollback diff, the CLI) do not disturb these results.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from infra.render import RecordingMocks, manifests, run_program
from tests.support.infra import SECRETS, upstream_kfp


@pytest.fixture(scope="session")
def programs() -> Iterator[dict[str, RecordingMocks]]:
    """Both stacks' registrations, with the upstream KFP stand-in and the known secrets."""
    yield {stack: run_program(stack, secrets=SECRETS, kustomize=upstream_kfp) for stack in ("dev", "prod")}


@pytest.fixture(params=["dev", "prod"])
def stack(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def program(programs: dict[str, RecordingMocks], stack: str) -> RecordingMocks:
    return programs[stack]


@pytest.fixture
def objects(program: RecordingMocks) -> list[dict[str, Any]]:
    """The stack's Kubernetes objects with real values (secrets unwrapped), for wiring checks."""
    return manifests(program, redacted=False)
