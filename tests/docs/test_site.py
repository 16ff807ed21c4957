"""The documentation site (mkdocs.yml, docs/) builds with `mkdocs build --strict`, as `make docs` and CI build it: a
broken link, a broken anchor or a page left out of the navigation fails it. README.md stays the front door."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.support import REPO

DOCS_DIR = REPO / "docs"


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's banner about its successor, not a warning
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], cwd=config.parent, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def copy_of_the_site(tmp_path: Path) -> Path:
    """mkdocs.yml and docs/ copied to tmp_path, for breaking without touching the checkout."""
    shutil.copy(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(DOCS_DIR, tmp_path / "docs")
    return tmp_path / "mkdocs.yml"


def nav_pages(nav: list) -> set[str]:  # type: ignore[type-arg]
    pages: set[str] = set()
    for entry in nav:
        for value in (entry.values() if isinstance(entry, dict) else [entry]):
            pages |= nav_pages(value) if isinstance(value, list) else {value}
    return pages


def test_the_site_builds_strict(tmp_path: Path) -> None:
    started = time.perf_counter()
    built = build(REPO / "mkdocs.yml", tmp_path / "site")
    elapsed = time.perf_counter() - started
    print(f"\nmkdocs build --strict: {elapsed:.2f} s")  # noqa: T201 - the docs build time, for the closing note
    assert built.returncode == 0, built.stdout + built.stderr
    pages = sorted(p.relative_to(DOCS_DIR).as_posix() for p in DOCS_DIR.rglob("*.md"))
    for page in pages:
        html = "index.html" if page == "index.md" else page.removesuffix(".md") + "/index.html"
        assert (tmp_path / "site" / html).is_file(), page


def test_every_page_is_in_the_navigation() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    pages = {p.relative_to(DOCS_DIR).as_posix() for p in DOCS_DIR.rglob("*.md")}
    assert nav_pages(config["nav"]) == pages
    assert config["strict"] is True and config["theme"]["name"] == "material"


@pytest.mark.parametrize(("page", "broken"), [
    ("training.md", "[the gate](gating.md)"),                # a page that does not exist
    ("serving.md", "[alerts](monitoring.md#no-such-section)"),  # an anchor that does not exist
    ("data.md", "[the code](../src/aicash/market/__init__.py)"),  # a file outside docs/
])
def test_a_broken_link_fails_the_build(tmp_path: Path, page: str, broken: str) -> None:
    config = copy_of_the_site(tmp_path)
    with (tmp_path / "docs" / page).open("a", encoding="utf-8") as f:
        f.write(f"\nSee {broken}.\n")
    built = build(config, tmp_path / "site")
    assert built.returncode != 0
    target = re.search(r"\]\(([^)#]+)", broken)
    assert target and target.group(1) in built.stdout + built.stderr, built.stderr


def test_a_page_left_out_of_the_navigation_fails_the_build(tmp_path: Path) -> None:
    config = copy_of_the_site(tmp_path)
    (tmp_path / "docs" / "orphan.md").write_text("# Orphan\n", encoding="utf-8")
    built = build(config, tmp_path / "site")
    assert built.returncode != 0 and "orphan.md" in built.stderr


def test_the_readme_is_the_front_door() -> None:
    """Short, the two commands first, and a link to every page of the site."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    first_block = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert first_block and re.findall(r"^make (\w+)", first_block.group(1), re.M) == ["demo", "test"]
    linked = set(re.findall(r"\]\(docs/([\w/-]+\.md)\)", readme))
    assert linked == {p.relative_to(DOCS_DIR).as_posix() for p in DOCS_DIR.rglob("*.md")}
