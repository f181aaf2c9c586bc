"""Exceptions raised on user input.

Every error caused by the user's data, paths or options derives from :class:`ReIDError`. The
command line prints such an error as one line (no traceback) and exits with status 2; library
users can catch it. Messages name the offending path or value and say what was expected.
"""

from __future__ import annotations


class ReIDError(Exception):
    """Base class of the errors that a user can fix (bad path, bad file, bad option)."""


class DatasetLayoutError(ReIDError):
    """A dataset root does not match the expected folder layout."""


class DataFileError(ReIDError):
    """A data file (list, features, captions, attributes) is missing or malformed."""
