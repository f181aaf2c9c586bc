"""The Typer application, its one-line error handling and the global options."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from vlreid import __version__
from vlreid.cli._command import CommandInterrupted, ReIDGroup
from vlreid.errors import ReIDError

console = Console()
error_console = Console(stderr=True)

INTERRUPTED_EXIT_CODE = 130
"""128 + SIGINT, what shells report for a command stopped with Ctrl-C."""


def error_message(error: ReIDError) -> str:
    """The message of ``error`` as the user should read it.

    An error raised inside a DataLoader worker reaches the main process re-raised by torch with
    the worker's whole traceback as its message; only the original message (its last line) is
    kept.
    """
    text = str(error)
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1]
        name = type(error).__name__
        text = last.split(f"{name}: ", 1)[1] if f"{name}: " in last else last
    return text


class _UserErrorGroup(ReIDGroup):
    """Prints a :class:`ReIDError` raised by any command as one line and exits with status 2;
    Ctrl-C prints one line (what was saved, how to resume) and exits with status 130."""

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except ReIDError as error:
            message = escape(error_message(error))
            error_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None
        except CommandInterrupted as interrupted:
            error_console.print(escape(str(interrupted)), highlight=False, soft_wrap=True)
            raise typer.Exit(code=INTERRUPTED_EXIT_CODE) from None


app = typer.Typer(
    name="reid",
    cls=_UserErrorGroup,
    help="Caption-guided, CLIP-based person re-identification.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(
    cls=ReIDGroup, help="Parse benchmark folders and make synthetic data.", no_args_is_help=True
)
app.add_typer(data_app, name="data")
captions_app = typer.Typer(
    cls=ReIDGroup, help="Inspect caption folders written by `reid caption`.", no_args_is_help=True
)
app.add_typer(captions_app, name="captions")


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"reid {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
