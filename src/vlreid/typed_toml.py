"""Typed TOML tables: frozen dataclasses from parsed TOML, ``a.b=c`` overrides, TOML output.

The generic half of :mod:`vlreid.config`: :func:`build_dataclass` converts a TOML table to a
dataclass field by field (``int``, ``float``, ``bool``, ``str``, tuples, mappings, optionals,
nested dataclasses), :func:`apply_override` edits parsed TOML with a ``--set`` expression, and
:func:`dump_tables` writes nested dicts back as TOML. ``"none"`` stands for None, which TOML lacks.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # the same parser, from PyPI
    import tomli as tomllib

from vlreid.errors import ReIDError

NONE = "none"
TOMLDecodeError = tomllib.TOMLDecodeError


class ConfigKeyError(ReIDError):
    """An unknown key, or a value of the wrong type, at a dotted key path of a config.

    Attributes:
        key: The dotted path (``data.batch_size``), so that the caller can say whether the file
            or a ``--set`` override holds it (:func:`locate_error`).
        message: What is wrong, naming the key.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


def closest_key(key: str, valid: Sequence[str]) -> str | None:
    """The valid key most similar to a mistyped one (``difflib``), or None when none is close."""
    matches = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    return matches[0] if matches else None


def override_key(override: str) -> str:
    """The dotted key of a ``--set key=value`` expression."""
    return override.partition("=")[0].strip()


def locate_error(error: ConfigKeyError, source: str, overrides: Sequence[str]) -> ReIDError:
    """``error`` blamed on the ``--set`` override that wrote its key, else on ``source``."""
    for override in reversed(overrides):  # the last override of a key is the one that counts
        key = override_key(override)
        if key == error.key or error.key.startswith(f"{key}.") or key.startswith(f"{error.key}."):
            return ReIDError(f"--set {override}: {error.message}")
    return ReIDError(f"{source}: {error.message}")


def parse_toml(text: str) -> dict[str, Any]:
    """``tomllib.loads`` (raises :data:`TOMLDecodeError`)."""
    return tomllib.loads(text)


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Set ``a.b.c=value`` in nested dicts ``raw`` (value read as TOML, else as a string)."""
    key, separator, text = override.partition("=")
    parts = key.strip().split(".")
    if not separator or not all(parts):
        raise ReIDError(f"--set {override}: expected section.key=value, e.g. data.root=DIR")
    try:
        value = tomllib.loads(f"value = {text.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    table = raw
    for part in parts[:-1]:
        table = table.setdefault(part, {})
        if not isinstance(table, dict):
            raise ReIDError(f"--set {override}: {part!r} is a value, not a table")
    table[parts[-1]] = value


def build_dataclass(cls: type, table: Any, path: str) -> Any:
    """Instantiate dataclass ``cls`` from a TOML table, converting each value to its field type.

    Raises:
        ReIDError: ``table`` is not a table, has unknown keys, or a value has the wrong type.
    """
    if not isinstance(table, Mapping):
        raise ConfigKeyError(path, f"[{path}] must be a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    reject_unknown(table, tuple(fields), path)
    values = {
        key: convert_value(value, hints[key], f"{path}.{key}") for key, value in table.items()
    }
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise ConfigKeyError(path, f"[{path}]: {error}") from error


def reject_unknown(
    table: Mapping[str, Any], valid: Sequence[str], path: str = "", context: str = ""
) -> None:
    """Refuse keys of ``table`` (the table at dotted ``path``; ``""``: the top level) that are not
    in ``valid``, suggesting the closest valid key.

    Raises:
        ConfigKeyError: At the first unknown key (in sorted order).
    """
    unknown = sorted(set(table) - set(valid))
    if not unknown:
        return
    key = unknown[0]
    where = f" in [{path}]" if path else ""
    closest = closest_key(key, valid)
    hint = f"; did you mean {closest!r}?" if closest else ""
    others = f" (and {len(unknown) - 1} more unknown)" if len(unknown) > 1 else ""
    raise ConfigKeyError(
        f"{path}.{key}" if path else key,
        f"unknown key {key!r}{where}{context}{others}{hint} (valid keys: {', '.join(valid)})",
    )


def convert_value(value: Any, hint: Any, path: str) -> Any:
    """Convert a TOML value to the type ``hint`` (see the module docstring)."""
    origin = typing.get_origin(hint)
    arguments = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if type(None) in arguments and (value is None or value == NONE):
            return None
        errors: list[ConfigKeyError] = []
        for argument in arguments:
            if argument is type(None):
                continue
            try:
                return convert_value(value, argument, path)
            except ConfigKeyError as error:
                errors.append(error)
        raise errors[0] if errors else ConfigKeyError(path, f"{path}: cannot convert {value!r}")
    if hint is Any:
        return value
    if origin in (tuple, list, Sequence) or hint in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigKeyError(path, f"{path} must be a list, got {value!r}")
        if origin is tuple and arguments and arguments[-1] is not Ellipsis:
            if len(value) != len(arguments):
                raise ConfigKeyError(
                    path, f"{path} must have {len(arguments)} items, got {value!r}"
                )
            return tuple(convert_value(v, a, path) for v, a in zip(value, arguments, strict=True))
        item = arguments[0] if arguments else Any
        return tuple(convert_value(v, item, path) for v in value)
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigKeyError(path, f"{path} must be a table, got {value!r}")
        return copy.deepcopy(dict(value))
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, path)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigKeyError(path, f"{path} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigKeyError(path, f"{path} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigKeyError(path, f"{path} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if isinstance(value, (Mapping, list, bool)):
            raise ConfigKeyError(path, f"{path} must be a string, got {value!r}")
        return str(value)
    raise ConfigKeyError(path, f"{path}: unsupported field type {hint!r}")


def plain_dict(instance: Any) -> dict[str, Any]:
    """A dataclass as a dict of JSON values (tuples as lists, mappings deep-copied)."""
    return json.loads(json.dumps(dataclasses.asdict(instance)))


def dump_tables(tables: Mapping[str, Mapping[str, Any]]) -> str:
    """TOML text of ``{"table": {...}}`` (sub-tables as ``[table.sub]``; None as ``"none"``)."""
    lines: list[str] = []
    for name, table in tables.items():
        _dump_table(lines, name, table)
    return "\n".join(lines).strip() + "\n"


def _toml_key(key: str) -> str:
    is_bare = key.replace("_", "a").replace("-", "a").isalnum()
    return key if is_bare else json.dumps(key)


def _toml_value(value: Any) -> str:
    if value is None:
        return json.dumps(NONE)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return json.dumps(value)
    if isinstance(value, float):
        if value != value:
            return "nan"
        return repr(value) if abs(value) != float("inf") else ("inf" if value > 0 else "-inf")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"cannot write {value!r} as TOML")


def _dump_table(lines: list[str], name: str, table: Mapping[str, Any]) -> None:
    """Scalars and lists first, then each non-empty sub-table as its own ``[a.b]`` table."""
    nested = {k: v for k, v in table.items() if isinstance(v, dict) and v}
    lines.append(f"[{name}]")
    lines.extend(
        f"{_toml_key(key)} = {_toml_value(value)}"
        for key, value in table.items()
        if key not in nested
    )
    lines.append("")
    for key, value in nested.items():
        _dump_table(lines, f"{name}.{_toml_key(key)}", value)
