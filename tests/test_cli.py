"""The command line's own behaviour (commands are tested next to their library code)."""

from __future__ import annotations

from typer.testing import CliRunner

from vlreid import __version__
from vlreid.cli import app


def test_version_and_help() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "data" in result.output
