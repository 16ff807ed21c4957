"""Python's warnings (a library's DeprecationWarning, KFP's RuntimeWarning about images) kept off the terminal:
they go to a log file instead, where they can still be read."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TextIO


def keep_warnings_in(log_path: Path) -> None:
    """From now on, write every warning this process shows to `log_path` (appended), not to stderr; where the
    file cannot be written, drop them."""

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        text = warnings.formatwarning(message, category, filename, lineno, line)
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("a", encoding="utf-8") as log:
                log.write(text)
        except OSError:
            pass

    warnings.showwarning = show
