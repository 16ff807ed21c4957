"""`make audit`: pip-audit over the locked dependencies (`requirements.lock`), failing on what can be fixed.

Exit 1 when a locked release has a known vulnerability with a fixed release available (upgrade it, `make lock`,
commit the lock); known vulnerabilities without a fix are listed but do not fail the audit. Exit 2 when the audit
cannot run (the vulnerability database is unreachable, the lock is missing). Without `--osv-url` pip-audit asks
PyPI's vulnerability feed; `--osv-url` points it at an OSV-compatible API (a mirror, or a test's own server).

    python scripts/audit.py requirements.lock [--osv-url URL]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console()


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    vuln_id: str
    fix_versions: tuple[str, ...]

    @property
    def fixable(self) -> bool:
        return bool(self.fix_versions)


def findings(report: dict) -> list[Finding]:
    """Every (package, vulnerability) in pip-audit's JSON report."""
    out = []
    for dep in report.get("dependencies", []):
        for vuln in dep.get("vulns", []):
            out.append(Finding(dep["name"], dep.get("version", "?"), vuln["id"], tuple(vuln.get("fix_versions", []))))
    return out


def pip_audit(lock: Path, osv_url: str | None, cache_dir: Path | None) -> dict:
    """pip-audit's JSON report on `lock` (pinned, no resolution, no pip); RuntimeError when it could not run."""
    with tempfile.TemporaryDirectory(prefix="aicash-audit-") as tmp:
        out = Path(tmp) / "report.json"
        cmd = [str(Path(sys.executable).parent / "pip-audit"), "-r", str(lock), "--no-deps", "--disable-pip",
               "--format", "json", "--output", str(out), "--progress-spinner", "off", "--timeout", "20"]
        if osv_url:
            cmd += ["--vulnerability-service", "osv", "--osv-url", osv_url]
        if cache_dir:
            cmd += ["--cache-dir", str(cache_dir)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
        # pip-audit exits 1 both when it found vulnerabilities (report written) and when it failed (none written).
        if not out.exists() or not out.read_text().strip():
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"pip-audit could not run (exit {done.returncode}): {last[:300]}")
        return json.loads(out.read_text())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("lock", type=Path, help="the pinned requirements file (requirements.lock)")
    parser.add_argument("--osv-url", help="an OSV-compatible query API instead of PyPI's feed")
    parser.add_argument("--cache-dir", type=Path, help="pip-audit's HTTP cache (default: its own)")
    args = parser.parse_args(argv)
    if not args.lock.is_file():
        console.print(f"[red]no lock file at {args.lock}[/]: run `make lock` first", soft_wrap=True)
        return 2
    try:
        report = pip_audit(args.lock, args.osv_url, args.cache_dir)
    except RuntimeError as exc:
        console.print(f"[red]audit not done:[/] {exc}", soft_wrap=True, markup=True)
        return 2
    found = findings(report)
    audited = sum(1 for dep in report.get("dependencies", []) if "skip_reason" not in dep)
    if found:
        table = Table("package", "version", "vulnerability", "fixed in", title="Known vulnerabilities")
        for f in found:
            table.add_row(f.package, f.version, f.vuln_id, ", ".join(f.fix_versions) or "no fix yet")
        console.print(table)
    fixable = [f for f in found if f.fixable]
    console.print(f"{audited} locked releases audited: {len(found)} known vulnerabilities, {len(fixable)} with a fix",
                  soft_wrap=True)
    if fixable:
        console.print("upgrade those packages, run `make lock`, and commit requirements.lock", soft_wrap=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
