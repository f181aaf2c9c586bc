"""The ``reid`` command line.

Each command parses its options and calls one library function, so that tests and notebooks run
the same code. Errors the user can fix (:class:`vlreid.errors.ReIDError`) are printed as one line,
without a traceback, and exit with status 2. Heavy libraries are imported inside the commands,
so that ``reid --help`` stays fast.
"""

from vlreid.cli import captions, data, evaluate, export, train  # noqa: E402,F401  (register commands)
from vlreid.cli._app import app, console, error_console

__all__ = ["app", "console", "error_console", "main"]


def main() -> None:
    """Console-script entry point."""
    app()
