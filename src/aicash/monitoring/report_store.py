"""Where drift reports go: `AICASH_HOME/reports/drift/<stamp>/` always, and S3 (`s3://S3_BUCKET/reports/drift/
<stamp>/`, through the registry's artifact store, with its SHA-256 manifest) when USE_S3_STORAGE is on. Locally
the folder is where the full report is kept (no manifest)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from aicash.registry.artifacts import S3ArtifactStore
from aicash.settings import Settings

HTML_FILE, SNAPSHOT_FILE, SUMMARY_FILE = "report.html", "snapshot.json", "summary.json"
BRIEF_FILE = "summary.html"  # the reduced report: mailed when Evidently's report is over the mail's budget
KIND = "drift"  # the artifact name under the store's `reports` prefix


def stamp(at: datetime) -> str:
    """A folder name that sorts by time and is valid as an artifact version: 20250301T142233Z."""
    return at.strftime("%Y%m%dT%H%M%SZ")


def report_folder(settings: Settings, at: datetime) -> Path:
    return settings.aicash_home / "reports" / "drift" / stamp(at)


def write_report(folder: Path, html: str, snapshot_json: str, summary: dict[str, Any], brief_html: str | None = None
                 ) -> Path:
    """report.html (Evidently), snapshot.json (Evidently's snapshot), summary.json (the verdict) and, when given,
    summary.html (the reduced report); returns folder."""
    folder.mkdir(parents=True, exist_ok=True)
    if brief_html is not None:
        (folder / BRIEF_FILE).write_text(brief_html, encoding="utf-8")
    (folder / HTML_FILE).write_text(html, encoding="utf-8")
    (folder / SNAPSHOT_FILE).write_text(snapshot_json, encoding="utf-8")
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    return folder


def upload_report(settings: Settings, folder: Path) -> str | None:
    """The S3 URI of the uploaded folder in cluster mode (USE_S3_STORAGE), else None."""
    if not settings.use_s3_storage:
        return None
    return _s3_store(settings).upload(KIND, folder.name, folder).uri


def report_location(settings: Settings, folder: Path) -> str:
    """Where the full report of `folder` is kept: its S3 URI in cluster mode, else its path under AICASH_HOME."""
    if settings.use_s3_storage:
        return _s3_store(settings).uri(KIND, folder.name) + HTML_FILE
    return str(folder / HTML_FILE)


def _s3_store(settings: Settings) -> S3ArtifactStore:
    store = S3ArtifactStore(settings.s3_bucket, settings.s3_endpoint_url)
    store.prefix = "reports"
    return store
