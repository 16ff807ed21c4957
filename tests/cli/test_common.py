"""CLI helpers that must work in the platform image as well as in a checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_pipelines_import_from_pythonpath_without_a_checkout(tmp_path: Path) -> None:
    """The platform image has /app (pipelines/, features/, pyproject.toml, no Pulumi.yaml) on PYTHONPATH and aicash
    installed from a wheel: `import_pipelines` must find them there, where `repo_root()` finds no checkout."""
    app = tmp_path / "app"
    for folder in ("pipelines", "features"):
        shutil.copytree(REPO / folder, app / folder, ignore=shutil.ignore_patterns("__pycache__", "compiled"))
    code = (
        "import sys, aicash.cli.common as c\n"
        "c.repo_root = lambda: (_ for _ in ()).throw(SystemExit('no checkout'))\n"  # as in the image
        "sys.path[:] = [p for p in sys.path if p not in ('', " + repr(str(REPO)) + ")]\n"
        "c.import_pipelines()\n"
        "import pipelines.runner\n"
        "print(pipelines.runner.__file__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(app), "PATH": "/usr/bin:/bin", "FEAST_USAGE": "False"}, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().startswith(str(app))
