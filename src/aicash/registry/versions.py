"""Model version names: `v{YYYYMMDD}-{HHMMSS}-{sha7}`, sortable as text and naming their contents.

The time is the registration time in UTC, so sorting version strings sorts them by age; `sha7` is the first
seven hex digits of a digest over the artifact files' contents, so two versions with the same suffix hold
byte-identical artifacts.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

from aicash.registry.artifacts import artifact_files, sha256_file

VERSION_PATTERN = re.compile(r"^v\d{8}-\d{6}-[0-9a-f]{7}$")


def content_digest(artifacts_dir: Path) -> str:
    """SHA-256 over the sorted (relative path, file SHA-256) pairs of the directory."""
    digest = hashlib.sha256()
    for rel in artifact_files(artifacts_dir):
        digest.update(f"{rel}\0{sha256_file(artifacts_dir / rel)}\n".encode())
    return digest.hexdigest()


def new_version(artifacts_dir: Path, now: datetime | None = None) -> str:
    """A new version name for the artifacts in `artifacts_dir`, e.g. v20250301-142233-3f9a1c2."""
    at = (now or datetime.now(UTC)).astimezone(UTC)
    return f"v{at:%Y%m%d-%H%M%S}-{content_digest(artifacts_dir)[:7]}"
