"""Typed TOML tables: frozen dataclasses from parsed TOML, ``a.b=c`` overrides, TOML output.

The generic half of :mod:`vlreid.config`: :func:`build_dataclass` converts a TOML table to a
dataclass field by field (``int``, ``float``, ``bool``, ``str``, tuples, mappings, optionals,
nested dataclasses), :func:`apply_override` edits parsed TOML with a ``--set`` expression, and
:func:`dump_tables` writes nested dicts back as TOML. ``"none"`` stands for None, which TOML lacks.
"""

from __future__ import annotations

import copy
import dataclasses
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


def parse_toml(text: str) -> dict[str, Any]:
    """``tomllib.loads`` (raises :data:`TOMLDecodeError`)."""
    return tomllib.loads(text)


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Set ``a.b.c=value`` in nested dicts ``raw`` (value read as TOML, else as a string)."""
    key, separator, text = override.partition("=")
    parts = key.strip().split(".")
    if not separator or not all(parts):
        raise ReIDError(f"override {override!r} must look like section.key=value")
    try:
        value = tomllib.loads(f"value = {text.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    table = raw
    for part in parts[:-1]:
        table = table.setdefault(part, {})
        if not isinstance(table, dict):
            raise ReIDError(f"override {override!r}: {part!r} is a value, not a table")
    table[parts[-1]] = value


def build_dataclass(cls: type, table: Any, path: str) -> Any:
    """Instantiate dataclass ``cls`` from a TOML table, converting each value to its field type.

    Raises:
        ReIDError: ``table`` is not a table, has unknown keys, or a value has the wrong type.
    """
    if not isinstance(table, Mapping):
        raise ReIDError(f"[{path}] must be a table, got {table!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    reject_unknown(table, tuple(fields), f"[{path}]")
    values = {
        key: convert_value(value, hints[key], f"{path}.{key}") for key, value in table.items()
    }
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise ReIDError(f"[{path}]: {error}") from error


def reject_unknown(table: Mapping[str, Any], valid: Sequence[str], where: str) -> None:
    unknown = sorted(set(table) - set(valid))
    if unknown:
        raise ReIDError(f"unknown key(s) {unknown} in {where}; valid keys: {list(valid)}")


def convert_value(value: Any, hint: Any, path: str) -> Any:
    """Convert a TOML value to the type ``hint`` (see the module docstring)."""
    origin = typing.get_origin(hint)
    arguments = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if type(None) in arguments and (value is None or value == NONE):
            return None
        errors = []
        for argument in arguments:
            if argument is type(None):
                continue
            try:
                return convert_value(value, argument, path)
            except ReIDError as error:
                errors.append(str(error))
        raise ReIDError(errors[0] if errors else f"{path}: cannot convert {value!r}")
    if hint is Any:
        return value
    if origin in (tuple, list, Sequence) or hint in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ReIDError(f"{path} must be a list, got {value!r}")
        if origin is tuple and arguments and arguments[-1] is not Ellipsis:
            if len(value) != len(arguments):
                raise ReIDError(f"{path} must have {len(arguments)} items, got {value!r}")
            return tuple(convert_value(v, a, path) for v, a in zip(value, arguments, strict=True))
        item = arguments[0] if arguments else Any
        return tuple(convert_value(v, item, path) for v in value)
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ReIDError(f"{path} must be a table, got {value!r}")
        return copy.deepcopy(dict(value))
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, path)
    if hint is bool:
        if not isinstance(value, bool):
            raise ReIDError(f"{path} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ReIDError(f"{path} must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ReIDError(f"{path} must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if isinstance(value, (Mapping, list, bool)):
            raise ReIDError(f"{path} must be a string, got {value!r}")
        return str(value)
    raise ReIDError(f"{path}: unsupported field type {hint!r}")


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
