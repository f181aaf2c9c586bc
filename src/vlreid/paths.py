"""User paths: made absolute once, where they enter (command line, config loading, library entry
points), so that nothing downstream depends on the current directory."""

from __future__ import annotations

import os
from pathlib import Path


def absolute_path(path: str | os.PathLike[str]) -> Path:
    """``path`` with ``~`` expanded, made absolute against the current directory.

    The result is normalised (``a/../b`` -> ``b``) but symbolic links are kept, so that messages
    name the folders the user typed.
    """
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def looks_like_path(value: str) -> bool:
    """Whether an option that takes a name *or* a path (a model, a template) names a path: it
    starts with ``.``, ``/`` or ``~``, or exists relative to the current directory."""
    return value.startswith((".", "/", "~")) or Path(value).exists()


def absolute_if_path(value: str) -> str:
    """``value`` made absolute when :func:`looks_like_path`, else unchanged (a hub id, a name)."""
    return str(absolute_path(value)) if looks_like_path(value) else value
