"""What every ``reid`` command does before its function runs: absolute paths, flags, aliases.

- Every :class:`~pathlib.Path` option or argument (and every item of a list of paths) is made
  absolute against the current directory once, here, so that library code never sees a relative
  path (``~`` is expanded; symbolic links are kept, so messages name the folders the user typed).
- Boolean flags are displayed as flags in ``--help`` (no ``<bool>`` type column).
- Old option spellings (:data:`HIDDEN_ALIASES`) still parse but are not shown.
- Ctrl-C raises :class:`CommandInterrupted` with one line saying what was saved and how to go on
  (the command's entry in :data:`INTERRUPT_MESSAGES`), which the application prints (exit 130).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from typer.core import TyperCommand, TyperGroup

from vlreid.paths import absolute_path

HIDDEN_ALIASES: dict[str, tuple[str, ...]] = {
    "--workers": ("--num-workers",),
    "--fallback-captions": ("--missing-captions", "fallback"),
}
"""Old spelling -> the arguments it stands for (the config's names are the current ones)."""


INTERRUPT_MESSAGES: dict[str, Callable[[dict[str, Any]], str]] = {}
"""Command name -> the line printed on Ctrl-C, from the command's (absolute) parameters."""


class CommandInterrupted(Exception):
    """Ctrl-C during a command; the message says what was saved and how to resume."""


def on_interrupt(command: str) -> Callable[[Callable[[dict[str, Any]], str]], Any]:
    """Register the Ctrl-C message of ``command`` (decorator)."""

    def register(message: Callable[[dict[str, Any]], str]) -> Callable[[dict[str, Any]], str]:
        INTERRUPT_MESSAGES[command] = message
        return message

    return register


def _absolute_value(value: Any) -> Any:
    if isinstance(value, Path):
        return absolute_path(value)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Path) for v in value):
        return type(value)(absolute_path(v) for v in value)
    return value


def _hide_bool_types(params: Sequence[Any]) -> None:
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""  # rich help prints the metavar as the type column


def _expand_aliases(args: list[str], known: set[str]) -> list[str]:
    expanded: list[str] = []
    for arg in args:
        name, separator, value = arg.partition("=")
        replacement = HIDDEN_ALIASES.get(name)
        if replacement is None or replacement[0] not in known or name in known:
            expanded.append(arg)
        elif separator:
            expanded.extend([replacement[0], value])
        else:
            expanded.extend(replacement)
    return expanded


class ReIDCommand(TyperCommand):
    """A command whose paths are absolute and whose flags display as flags (module docstring)."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _hide_bool_types(params)
        return params

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        known = {opt for param in self.params for opt in (*param.opts, *param.secondary_opts)}
        return super().parse_args(ctx, _expand_aliases(args, known))

    def invoke(self, ctx: Any) -> Any:
        ctx.params = {name: _absolute_value(value) for name, value in ctx.params.items()}
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            message = INTERRUPT_MESSAGES.get(self.name or "")
            raise CommandInterrupted(
                message(ctx.params) if message else "interrupted; nothing was saved"
            ) from None


class ReIDGroup(TyperGroup):
    """A command group whose help displays flags as flags."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        _hide_bool_types(params)
        return params
