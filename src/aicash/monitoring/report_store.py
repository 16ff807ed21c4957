"""Where drift reports go: `AICASH_HOME/reports/drift/<stamp>/` always, and S3 (`s3://S3_BUCKET/reports/drift/
<stamp>/`, through the registry's artifact store, with its SHA-256 manifest) when USE_S3_STORAGE is on."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from aicash.registry.artifacts import S3ArtifactStore
from aicash.settings import Settings

HTML_FILE, SNAPSHOT_FILE, SUMMARY_FILE = "report.html", "snapshot.json", "summary.json"


def stamp(at: datetime) -> str:
    """A folder name that sorts by time and is valid as an artifact version: 20250301T142233Z."""
    return at.strftime("%Y%m%dT%H%M%SZ")


def report_folder(settings: Settings, at: datetime) -> Path:
    return settings.aicash_home / "reports" / "drift" / stamp(at)


def write_report(folder: Path, html: str, snapshot_json: str, summary: dict[str, Any]) -> Path:
    """report.html (Evidently), snapshot.json (Evidently's snapshot), summary.json (the verdict); returns folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / HTML_FILE).write_text(html, encoding="utf-8")
    (folder / SNAPSHOT_FILE).write_text(snapshot_json, encoding="utf-8")
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return folder


def upload_report(settings: Settings, folder: Path) -> str | None:
    """The S3 URI of the uploaded folder in cluster mode (USE_S3_STORAGE), else None."""
    if not settings.use_s3_storage:
        return None
    store = S3ArtifactStore(settings.s3_bucket, settings.s3_endpoint_url)
    store.prefix = "reports"
    return store.upload("drift", folder.name, folder).uri
