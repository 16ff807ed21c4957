"""The artifact store: a model version's files, kept on local disk or in S3, verified by SHA-256 on the way out.

An upload writes every file and then `manifest.json`, which lists each file's size and SHA-256; the SHA-256 of
the manifest's bytes is the version's digest, which the registry keeps in `ml_models.artifact_sha256`. A
download checks the manifest against that digest and every file against the manifest before anything lands in
the destination, so a corrupted, truncated or missing file is refused (`ArtifactIntegrityError`). Versions are
immutable: uploading the same name and version twice is refused.

Layout: `<root>/<name>/<version>/<file>`, where root is `AICASH_HOME/models` (local) or `s3://S3_BUCKET/models`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aicash.settings import Settings

MANIFEST = "manifest.json"
MANIFEST_FORMAT = 1
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CHUNK = 1 << 20


class ArtifactError(RuntimeError):
    """A store operation that cannot be done; the message says why and what to do."""


class ArtifactIntegrityError(ArtifactError):
    """A stored artifact does not match its recorded SHA-256 or size: corrupted, truncated or missing."""


class ArtifactNotFoundError(ArtifactError, LookupError):
    """No artifacts are stored for that name and version."""


class ArtifactExistsError(ArtifactError):
    """Artifacts are already stored for that name and version; versions are immutable."""


@dataclass(frozen=True)
class StoredArtifacts:
    """Where a version's artifacts went and the digest that identifies their exact contents."""

    name: str
    version: str
    uri: str
    sha256: str  # SHA-256 of manifest.json's bytes
    files: dict[str, dict[str, Any]]  # relative path -> {"sha256": ..., "size": ...}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_name(kind: str, value: str) -> str:
    if not NAME_PATTERN.fullmatch(value):
        raise ArtifactError(f"{kind} {value[:70]!r} is invalid: use 1-64 letters, digits, '.', '_' or '-'")
    return value


def artifact_files(src_dir: Path) -> list[str]:
    """Relative POSIX paths of the regular files under `src_dir`, sorted; an old manifest.json is left out."""
    if not src_dir.is_dir():
        raise ArtifactError(f"artifacts directory {src_dir} does not exist or is not a directory")
    files = sorted(p.relative_to(src_dir).as_posix() for p in src_dir.rglob("*") if p.is_file())
    files = [f for f in files if f != MANIFEST]
    if not files:
        raise ArtifactError(f"artifacts directory {src_dir} holds no files")
    return files


def build_manifest(name: str, version: str, src_dir: Path) -> bytes:
    """The manifest of `src_dir` as canonical JSON bytes (sorted keys), whose SHA-256 is the version digest."""
    files = {
        rel: {"sha256": sha256_file(src_dir / rel), "size": (src_dir / rel).stat().st_size}
        for rel in artifact_files(src_dir)
    }
    manifest = {"format": MANIFEST_FORMAT, "name": name, "version": version, "files": files}
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def _parse_manifest(raw: bytes, name: str, version: str, expected_sha256: str | None) -> dict[str, Any]:
    where = f"{name} {version}"
    if expected_sha256 is not None and hashlib.sha256(raw).hexdigest() != expected_sha256:
        raise ArtifactIntegrityError(
            f"{where}: manifest.json does not match the registered SHA-256 {expected_sha256[:12]}...: "
            "the stored artifacts were changed or replaced; re-register the model from its training run"
        )
    try:
        manifest = json.loads(raw)
        files = manifest["files"]
    except (ValueError, KeyError, TypeError):
        raise ArtifactIntegrityError(f"{where}: manifest.json is unreadable (corrupted or truncated)") from None
    if manifest.get("name") != name or manifest.get("version") != version:
        other = f"{manifest.get('name')} {manifest.get('version')}"
        raise ArtifactIntegrityError(f"{where}: manifest.json belongs to {other}")
    for rel in files:
        if rel.startswith("/") or ".." in Path(rel).parts:
            raise ArtifactIntegrityError(f"{where}: manifest.json names an unsafe path {rel!r}")
    return manifest


def _verify_file(path: Path, rel: str, entry: dict[str, Any], where: str) -> None:
    size = path.stat().st_size
    if size != entry["size"]:
        kind = "truncated" if size < entry["size"] else "has extra bytes"
        raise ArtifactIntegrityError(
            f"{where}: {rel} {kind} ({size} bytes, registered {entry['size']}): refusing to load it; "
            "re-upload the artifacts or promote another version"
        )
    actual = sha256_file(path)
    if actual != entry["sha256"]:
        raise ArtifactIntegrityError(
            f"{where}: {rel} is corrupted (SHA-256 {actual[:12]}..., registered {entry['sha256'][:12]}...): "
            "refusing to load it; re-upload the artifacts or promote another version"
        )


def verify_local(folder: Path, name: str, version: str, expected_sha256: str) -> bool:
    """True when `folder` already holds exactly the registered artifacts (manifest digest and every file)."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file():
        return False
    try:
        manifest = _parse_manifest(manifest_path.read_bytes(), name, version, expected_sha256)
        for rel, entry in manifest["files"].items():
            if not (folder / rel).is_file():
                return False
            _verify_file(folder / rel, rel, entry, f"{name} {version}")
    except ArtifactIntegrityError:
        return False
    return True


class ArtifactStore(ABC):
    """Upload, download (verified) and list model artifacts; subclasses only move bytes."""

    prefix = "models"

    # -- what a backend provides ---------------------------------------------------------------------------
    @abstractmethod
    def uri(self, name: str, version: str) -> str:
        """Where the version's files live, e.g. file:///... or s3://bucket/models/name/version/."""

    @abstractmethod
    def _put(self, key: str, path: Path) -> None: ...

    @abstractmethod
    def _put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def _get(self, key: str, dest: Path) -> bool:
        """Copy the object to `dest`; False when it does not exist."""

    @abstractmethod
    def _keys(self, prefix: str) -> list[str]:
        """Every key under `prefix` (ending in '/')."""

    @abstractmethod
    def _delete(self, keys: list[str]) -> None: ...

    # -- the interface -------------------------------------------------------------------------------------
    def _key(self, name: str, version: str, rel: str = "") -> str:
        return f"{self.prefix}/{name}/{version}/{rel}"

    def exists(self, name: str, version: str) -> bool:
        return bool(self._keys(self._key(name, version)))

    def upload(self, name: str, version: str, src_dir: Path) -> StoredArtifacts:
        """Store every file of `src_dir`, then the manifest (so a half-done upload has no manifest)."""
        check_name("model name", name)
        check_name("version", version)
        if self.exists(name, version):
            raise ArtifactExistsError(
                f"artifacts for {name} {version} already exist at {self.uri(name, version)}: versions are immutable, "
                "register a new version"
            )
        raw = build_manifest(name, version, src_dir)
        files = json.loads(raw)["files"]
        for rel in files:
            self._put(self._key(name, version, rel), src_dir / rel)
        self._put_bytes(self._key(name, version, MANIFEST), raw)
        return StoredArtifacts(name, version, self.uri(name, version), hashlib.sha256(raw).hexdigest(), files)

    def download(self, name: str, version: str, dest: Path, expected_sha256: str | None = None) -> Path:
        """Fetch and verify every file, then place them (and the manifest) in `dest`; returns `dest`.

        With `expected_sha256` (the registered digest) the manifest itself is checked too. Nothing is written
        to `dest` unless every file verifies.
        """
        where = f"{name} {version}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".aicash-download-", dir=dest.parent) as tmp:
            staging = Path(tmp)
            if not self._get(self._key(name, version, MANIFEST), staging / MANIFEST):
                if self.exists(name, version):
                    raise ArtifactIntegrityError(f"{where}: manifest.json is missing (upload never finished?)")
                raise ArtifactNotFoundError(f"no artifacts for {where} at {self.uri(name, version)}")
            manifest = _parse_manifest((staging / MANIFEST).read_bytes(), name, version, expected_sha256)
            for rel, entry in manifest["files"].items():
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                if not self._get(self._key(name, version, rel), target):
                    raise ArtifactIntegrityError(f"{where}: {rel} is missing from {self.uri(name, version)}")
                _verify_file(target, rel, entry, where)
            dest.mkdir(parents=True, exist_ok=True)
            for rel in [*manifest["files"], MANIFEST]:
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.move(staging / rel, dest / rel)
        return dest

    def list_versions(self, name: str | None = None) -> list[tuple[str, str]]:
        """(name, version) of every stored version with a manifest, sorted."""
        root = f"{self.prefix}/" + (f"{name}/" if name else "")
        found = set()
        for key in self._keys(root):
            parts = key[len(self.prefix) + 1 :].split("/")
            if len(parts) == 3 and parts[2] == MANIFEST:
                found.add((parts[0], parts[1]))
        return sorted(found)

    def delete(self, name: str, version: str) -> None:
        """Remove a version's files (used to clean up a registration that failed)."""
        self._delete(self._keys(self._key(name, version)))

    # -- small documents kept beside the models (the API key snapshot) -------------------------------------
    def put_document(self, key: str, data: bytes) -> None:
        """Write `data` under `key` (outside `models/`), replacing what was there."""
        self._put_bytes(key, data)

    def get_document(self, key: str) -> bytes | None:
        """The bytes under `key`, or None when there is no such document."""
        with tempfile.TemporaryDirectory(prefix=".aicash-document-") as tmp:
            dest = Path(tmp) / "document"
            return dest.read_bytes() if self._get(key, dest) else None


class LocalArtifactStore(ArtifactStore):
    """Files under a local folder, by default `AICASH_HOME/models`."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()

    def _path(self, key: str) -> Path:
        return self.root / key.removeprefix(f"{self.prefix}/")

    def uri(self, name: str, version: str) -> str:
        return (self.root / name / version).as_uri() + "/"

    def _put(self, key: str, path: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)

    def _put_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def _get(self, key: str, dest: Path) -> bool:
        source = self._path(key)
        if not source.is_file():
            return False
        shutil.copyfile(source, dest)
        return True

    def _keys(self, prefix: str) -> list[str]:
        folder = self._path(prefix)
        if not folder.is_dir():
            return []
        return sorted(f"{self.prefix}/{p.relative_to(self.root).as_posix()}" for p in folder.rglob("*") if p.is_file())

    def _delete(self, keys: list[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)


class S3ArtifactStore(ArtifactStore):
    """Objects in an S3 (or S3-compatible) bucket under `models/`; credentials come from boto3's chain."""

    def __init__(self, bucket: str, endpoint_url: str | None = None, client: Any = None) -> None:
        import boto3

        self.bucket = bucket
        self.client = client or boto3.client("s3", endpoint_url=endpoint_url)

    def uri(self, name: str, version: str) -> str:
        return f"s3://{self.bucket}/{self._key(name, version)}"

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"NoSuchBucket", "404"} and what == "list":
                raise ArtifactError(
                    f"S3 bucket {self.bucket!r} does not exist: create it or set S3_BUCKET to an existing bucket"
                ) from None
            raise ArtifactError(f"S3 {what} in bucket {self.bucket!r} failed: {code or exc}") from None
        except BotoCoreError as exc:
            raise ArtifactError(f"S3 {what} in bucket {self.bucket!r} failed: {exc}") from None

    def _put(self, key: str, path: Path) -> None:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.upload_file(str(path), self.bucket, key)
        except (BotoCoreError, ClientError, S3UploadFailedError) as exc:
            raise ArtifactError(f"S3 upload of {key} to bucket {self.bucket!r} failed: {exc}") from None

    def _put_bytes(self, key: str, data: bytes) -> None:
        self._call("put", self.client.put_object, Key=key, Body=data)

    def _get(self, key: str, dest: Path) -> bool:
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"NoSuchKey", "404"}:
                return False
            raise ArtifactError(f"S3 download of {key} from bucket {self.bucket!r} failed: {exc}") from None
        with dest.open("wb") as fh:
            for chunk in body.iter_chunks(_CHUNK):
                fh.write(chunk)
        return True

    def _keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        token: dict[str, str] = {}
        while True:
            page = self._call("list", self.client.list_objects_v2, Prefix=prefix, **token)
            keys += [obj["Key"] for obj in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return sorted(keys)
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            objects = [{"Key": k} for k in keys[start : start + 1000]]
            self._call("delete", self.client.delete_objects, Delete={"Objects": objects})


def store_for(settings: Settings) -> ArtifactStore:
    """S3 when USE_S3_STORAGE is on (S3_BUCKET, S3_ENDPOINT_URL), else files under AICASH_HOME/models."""
    if settings.use_s3_storage:
        return S3ArtifactStore(settings.s3_bucket, settings.s3_endpoint_url)
    return LocalArtifactStore(settings.aicash_home / "models")
