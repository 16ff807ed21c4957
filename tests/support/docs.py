"""What README.md and the documentation site's pages (docs/**/*.md) quote: the `aicash` commands of their bash
blocks, the Kubernetes objects they name (`kind/name`), the repository files they name."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tests.support import REPO

# The front door and every page of the MkDocs site (mkdocs.yml's docs_dir), where the README's details moved.
DOCS: tuple[Path, ...] = (REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")))
_SEPARATORS = {";", "&&", "||", "|", "&", ">", ">>", "(", ")", "()", "{", "}"}
# Files the docs name that the repository holds (not reports and results that runs write).
_SOURCE_SUFFIXES = {"", ".py", ".yaml", ".yml", ".toml", ".md", ".txt", ".lock"}


def bash_blocks(markdown: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", markdown, re.S)


def _tokens(line: str) -> list[str] | None:
    lexer = shlex.shlex(line, posix=True, punctuation_chars="();|&")  # not <>: placeholders such as <version>
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote: a line of a multi-line string (a heredoc), no command of its own
        return None


def _invocations(line: str, aliases: set[str]) -> list[list[str]]:
    """The arguments of every `aicash` call on one shell line: at the start of a command, behind a wrapper
    (`kubectl exec ... -- aicash`, `run-in-cluster aicash`), through a function forwarding to `aicash "$@"`, in
    `$(...)` or in `sh -c '...'`."""
    tokens = _tokens(line)
    if tokens is None:
        return []
    found: list[list[str]] = []
    command: list[str] = []
    for token in [*tokens, ";"]:
        if token in _SEPARATORS:
            if command and command[0] in aliases:
                command[0] = "aicash"
            for i, word in enumerate(command):
                if word == "aicash" and (i == 0 or command[i - 1] not in ("-n", "--namespace")):
                    args = command[i + 1:]
                    if args and not args[0].startswith("$"):  # not the forwarding `aicash "$@"` itself
                        found.append(args)
                    break
            for i, word in enumerate(command):  # nested shell code
                nested = re.findall(r"\$\(([^()]*)\)", word)
                if i > 0 and command[i - 1] == "-c":
                    nested.append(word)
                for code in nested:
                    found.extend(_invocations(code, aliases))
            command = []
        else:
            command.append(token)
    return found


def aicash_commands(markdown: str) -> list[list[str]]:
    """The arguments of every `aicash` call in the markdown's bash blocks, in order."""
    found = []
    for block in bash_blocks(markdown):
        aliases = set(re.findall(r"^\s*([\w-]+)\(\)\s*\{[^}\n]*\baicash \"\$@\"", block, re.M))
        for line in block.replace("\\\n", " ").splitlines():
            found.extend(_invocations(line, aliases))
    return found


def kubernetes_names(markdown: str) -> set[tuple[str, str]]:
    """(kind, name) of every `kind/aicash-...` the markdown names (`deploy/aicash-inference`, `job/...`)."""
    kinds = "deploy|deployment|job|cronjob|configmap|secret|svc|service"
    pattern = rf"(?<![\w/-])({kinds})/(aicash-[a-z0-9.-]*[a-z0-9])(?![\w<-])"
    return set(re.findall(pattern, markdown))


def repository_paths(markdown: str) -> set[str]:
    """Every source or configuration path under one of the repository's folders that the markdown quotes in
    backticks or links to."""
    folders = "|".join(p.name for p in REPO.iterdir() if p.is_dir() and not p.name.startswith("."))
    quoted = re.findall(rf"`((?:{folders})/[\w./-]*[\w])`", markdown)
    linked = re.findall(rf"\]\(((?:{folders})/[\w./-]*[\w])\)", markdown)
    return {path for path in {*quoted, *linked} if Path(path).suffix in _SOURCE_SUFFIXES}
