"""`make audit`: the real pip-audit over requirements.lock, against an OSV-compatible API served here on 127.0.0.1
(the public feeds are out of reach of these machines); and the lock is what is installed."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path

import pytest

from scripts import audit

REPO = Path(__file__).resolve().parents[2]
LOCK = REPO / "requirements.lock"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonical(name)] = version
    return pins


def osv_entry(vuln_id: str, package: str, fixed: str | None) -> dict:
    events = [{"introduced": "0"}] + ([{"fixed": fixed}] if fixed else [])
    return {"id": vuln_id, "summary": f"test advisory {vuln_id}", "schema_version": "1.6.0",
            "affected": [{"package": {"name": package, "ecosystem": "PyPI"},
                          "ranges": [{"type": "ECOSYSTEM", "events": events}]}]}


class OsvServer:
    """Answers OSV's `POST /v1/query` from `advisories` (package -> list of OSV entries); counts the queries."""

    def __init__(self) -> None:
        self.advisories: dict[str, list[dict]] = {}
        self.queries: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                name = query["package"]["name"]
                outer.queries.append(name)
                body = json.dumps({"vulns": outer.advisories[name]} if name in outer.advisories else {}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/query"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def osv() -> Iterator[OsvServer]:
    server = OsvServer()
    yield server
    server.close()


def run_audit(osv: OsvServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = audit.main([str(LOCK), "--osv-url", osv.url, "--cache-dir", str(tmp_path / "cache")])
    return code, capsys.readouterr().out


def test_a_clean_lock_passes_and_every_locked_release_is_asked_about(osv, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, out = run_audit(osv, tmp_path, capsys)
    assert code == 0, out
    assert set(osv.queries) == set(locked())  # each pinned release, none resolved or skipped
    assert f"{len(locked())} locked releases audited: 0 known vulnerabilities" in " ".join(out.split())


def test_a_vulnerability_with_a_fix_fails_the_audit(osv, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    osv.advisories["requests"] = [osv_entry("GHSA-test-fix1", "requests", "999.0.0")]
    code, out = run_audit(osv, tmp_path, capsys)
    assert code == 1, out
    assert "GHSA-test-fix1" in out and "requests" in out and "999.0.0" in out and "make lock" in out


def test_a_vulnerability_without_a_fix_is_listed_but_does_not_fail(osv, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    osv.advisories["pyyaml"] = [osv_entry("GHSA-test-nofix", "pyyaml", None)]
    code, out = run_audit(osv, tmp_path, capsys)
    assert code == 0, out
    assert "GHSA-test-nofix" in out and "no fix yet" in out
    assert "1 known vulnerabilities, 0 with a fix" in " ".join(out.split())


def test_an_unreachable_database_is_exit_2_not_a_pass(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    server = OsvServer()
    url = server.url
    server.close()  # nothing listens there any more
    code = audit.main([str(LOCK), "--osv-url", url, "--cache-dir", str(tmp_path / "cache")])
    assert code == 2
    assert "audit not done" in capsys.readouterr().out


def test_a_missing_lock_is_exit_2(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert audit.main([str(tmp_path / "nope.lock")]) == 2
    assert "make lock" in capsys.readouterr().out


def test_the_lock_pins_what_is_installed() -> None:
    """Installs take requirements.lock as constraints, so a difference means a dependency changed without
    `make lock`: the audit would check releases that are not the ones in use."""
    installed = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    installed.pop("aicash", None)
    pins = locked()
    missing = {n: v for n, v in installed.items() if n not in pins and n not in {"pip", "setuptools", "wheel"}}
    assert not missing, f"installed but not locked (run `make lock`): {missing}"
    differ = {n: (pins[n], installed.get(n)) for n in pins if installed.get(n, "").split("+")[0] != pins[n]}
    assert not differ, f"lock and environment differ (locked, installed): {differ}"
