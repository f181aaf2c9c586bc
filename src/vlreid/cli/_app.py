"""The Typer application, its one-line error handling and the global options."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.console import Console
from typer.core import TyperGroup

from vlreid import __version__
from vlreid.errors import ReIDError

console = Console()
error_console = Console(stderr=True)


class _UserErrorGroup(TyperGroup):
    """Prints a :class:`ReIDError` raised by any command as one line and exits with status 2."""

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except ReIDError as error:
            error_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None


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
    help="Parse benchmark folders and make synthetic data.", no_args_is_help=True
)
app.add_typer(data_app, name="data")
captions_app = typer.Typer(
    help="Inspect caption folders written by `reid caption`.", no_args_is_help=True
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
