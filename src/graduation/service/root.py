"""Where the project is: the nearest directory holding domains/, policies/ or registry/ (or GRADUATION_PROJECT).

Kept apart from ``service.project`` so that every command can find its project without loading domain files,
record models or the verifier machinery (`registry list` starts with this alone).
"""

from __future__ import annotations

import os
from pathlib import Path

from graduation.errors import InputError

MARKERS = ("domains", "policies", "registry")
ENV_PROJECT = "GRADUATION_PROJECT"


def find_project_root(start: Path | None = None) -> Path:
    """The nearest directory (from ``start`` up) holding domains/, policies/ or registry/; else ``start``."""
    if os.environ.get(ENV_PROJECT):
        return Path(os.environ[ENV_PROJECT]).resolve()
    start = (start or Path.cwd()).resolve()
    for candidate in (start, *start.parents):
        if any((candidate / m).is_dir() for m in MARKERS):
            return candidate
    return start


def require_project_root(start: Path | None = None) -> Path:
    """Like ``find_project_root``, but outside any project an ``InputError`` says how a project is found and
    how to choose one, instead of quietly treating the current directory as one."""
    if os.environ.get(ENV_PROJECT):
        return find_project_root(start)
    start = (start or Path.cwd()).resolve()
    for candidate in (start, *start.parents):
        if any((candidate / m).is_dir() for m in MARKERS):
            return candidate
    raise InputError(f"not inside a graduation project: neither {start} nor any directory above it holds "
                     f"{', '.join(m + '/' for m in MARKERS[:-1])} or {MARKERS[-1]}/ (that is how the project is "
                     f"found); run from inside one, choose one with `registry -C DIR ...` (or {ENV_PROJECT}=DIR), "
                     "or create one with `registry init DIR`")


__all__ = ["ENV_PROJECT", "MARKERS", "find_project_root", "require_project_root"]
