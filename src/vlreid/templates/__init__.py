"""Caption templates: the instruction given to a captioner, the caption form and the fields.

A template is a versioned TOML file in this folder (``person.toml``, ``vehicle.toml``) or a user
file with the same keys. It holds the instruction, the field vocabulary (the values of
:data:`vlreid.attributes.PERSON_FIELDS` / ``VEHICLE_FIELDS``, with the phrase written in captions
and the synonyms the parser accepts) and the caption as ordered clauses. Use::

    template = load_template("person")
    caption = render_caption(template, {"gender": "female", "upper_type": "coat"})
    parsed = parse_answer("A woman in a long red coat.", template)   # ParsedAnswer
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import tomllib

from vlreid.errors import DataFileError, ReIDError
from vlreid.templates.parser import ParsedAnswer, normalize_answer, parse_answer, parse_fields
from vlreid.templates.render import count_clip_tokens, fit_to_context, render_caption
from vlreid.templates.template import Clause, FieldValue, Template, TemplateField

TEMPLATES: dict[str, str] = {"person": "person.toml", "vehicle": "vehicle.toml"}
"""Built-in templates: name -> file in this package."""

__all__ = [
    "TEMPLATES",
    "Clause",
    "FieldValue",
    "ParsedAnswer",
    "Template",
    "TemplateField",
    "count_clip_tokens",
    "fit_to_context",
    "load_template",
    "normalize_answer",
    "parse_answer",
    "parse_fields",
    "render_caption",
]


def load_template(name_or_path: str | Path) -> Template:
    """Load a built-in template by name, or a template TOML file by path.

    Args:
        name_or_path: A key of :data:`TEMPLATES` or the path of a ``.toml`` file.

    Returns:
        The parsed, validated template.

    Raises:
        ReIDError: Unknown name (the message lists the built-in ones).
        DataFileError: The file is missing or malformed.
    """
    if str(name_or_path) in TEMPLATES:
        text = resources.files(__name__).joinpath(TEMPLATES[str(name_or_path)]).read_text()
        return Template.from_toml(tomllib.loads(text), source=f"template {name_or_path!r}")
    path = Path(name_or_path)
    if path.suffix != ".toml":
        raise ReIDError(
            f"unknown template {str(name_or_path)!r}: expected one of {sorted(TEMPLATES)} "
            "or the path of a template .toml file"
        )
    if not path.is_file():
        raise DataFileError(f"template file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise DataFileError(f"cannot parse template file {path}: {error}") from error
    return Template.from_toml(data, source=str(path))
