"""The :class:`Template` record and its validation from a TOML document (see ``person.toml``)."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any

from vlreid.errors import DataFileError


@dataclass(frozen=True)
class FieldValue:
    """One allowed value of a field.

    Attributes:
        name: The value as stored in attributes (``"t-shirt"``).
        phrase: The words written in captions (``"t-shirt"``; ``"a backpack"``).
        synonyms: Other words the parser maps to this value; the phrase is always accepted.
        article: Written by a ``{field.article}`` placeholder (``"a"`` for a skirt, ``""`` for
            trousers).
    """

    name: str
    phrase: str
    synonyms: tuple[str, ...] = ()
    article: str = "a"

    @property
    def surface_forms(self) -> tuple[str, ...]:
        """The phrase and the synonyms, longest first."""
        return tuple(sorted({self.phrase, *self.synonyms}, key=len, reverse=True))


@dataclass(frozen=True)
class TemplateField:
    """A caption field (``gender``, ``upper_color``...).

    Attributes:
        name: Field name, a key of the attribute vocabulary.
        values: Allowed values by name, in vocabulary order.
        missing: Written in a kept clause when the field is unknown (``"person"``, ``""``).
        anchors: Words the value must stand just before (``"hair"`` for ``short``/``long``);
            empty: the value may appear anywhere.
    """

    name: str
    values: dict[str, FieldValue]
    missing: str = ""
    anchors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Clause:
    """One clause of the caption: either ``text`` or ``prefix`` + ``items`` joined as a list.

    Attributes:
        text: A format string with ``{field}`` / ``{field.article}`` placeholders.
        prefix: Written before the joined items.
        items: Format strings joined with ``", "`` and ``" and "``.
        always: Keep the clause even when all its fields are unknown.
    """

    text: str = ""
    prefix: str = ""
    items: tuple[str, ...] = ()
    always: bool = False


@dataclass(frozen=True)
class Template:
    """A versioned caption template.

    Attributes:
        name: Template name (``person``); ``template`` column of the caption shards.
        version: Integer version; ``template_version`` column.
        description: One line for listings.
        instruction: The prompt given to a vision-language captioner.
        clauses: The caption form.
        fields: Fields in vocabulary order.
    """

    name: str
    version: int
    description: str
    instruction: str
    clauses: tuple[Clause, ...]
    fields: dict[str, TemplateField]
    matchers: dict[str, FieldMatcher] = field(default_factory=dict, compare=False, repr=False)

    @property
    def vocabulary(self) -> dict[str, tuple[str, ...]]:
        """Field name -> allowed values, the shape of :data:`vlreid.attributes.PERSON_FIELDS`."""
        return {name: tuple(spec.values) for name, spec in self.fields.items()}

    @classmethod
    def from_toml(cls, data: dict[str, Any], source: str) -> Template:
        """Build and validate a template from a parsed TOML document.

        Raises:
            DataFileError: A key is missing or a clause names an unknown field.
        """
        try:
            fields = {name: _parse_field(name, spec) for name, spec in data["fields"].items()}
            fields = {name: _resolve_anchors(spec, fields) for name, spec in fields.items()}
            clauses = tuple(
                Clause(
                    text=spec.get("text", ""),
                    prefix=spec.get("prefix", ""),
                    items=tuple(spec.get("items", ())),
                    always=bool(spec.get("always", False)),
                )
                for spec in data["clauses"]
            )
            template = cls(
                name=str(data["name"]),
                version=int(data["version"]),
                description=str(data.get("description", "")),
                instruction=" ".join(str(data["instruction"]).split()),
                clauses=clauses,
                fields=fields,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise DataFileError(
                f"malformed template ({source}): {error!r}; expected keys name, version, "
                "instruction, [[clauses]] and [fields.NAME] tables with values"
            ) from error
        for clause in clauses:
            for text in (clause.text, *clause.items):
                unknown = set(placeholder_fields(text)) - set(fields)
                if unknown:
                    raise DataFileError(
                        f"malformed template ({source}): clause {text!r} names unknown field(s) "
                        f"{sorted(unknown)}; fields are {list(fields)}"
                    )
        template.matchers.update({name: FieldMatcher.build(spec) for name, spec in fields.items()})
        return template


def placeholder_fields(text: str) -> list[str]:
    """The field names of the ``{field}`` / ``{field.article}`` placeholders of a format string."""
    return [
        name.split(".")[0] for _, name, _, _ in string.Formatter().parse(text) if name is not None
    ]


def _parse_field(name: str, spec: dict[str, Any]) -> TemplateField:
    values = {
        value: FieldValue(
            name=value,
            phrase=str(entry["phrase"]),
            synonyms=tuple(str(word) for word in entry.get("synonyms", ())),
            article=str(entry.get("article", "a")),
        )
        for value, entry in spec["values"].items()
    }
    anchors = tuple(spec.get("anchors", ()))
    anchor_field = spec.get("anchor_field")
    if anchor_field is not None:
        # Colours are read before the garment: anchors are the garment's surface forms.
        return TemplateField(name, values, str(spec.get("missing", "")), ("@" + anchor_field,))
    return TemplateField(name, values, str(spec.get("missing", "")), anchors)


def _resolve_anchors(spec: TemplateField, fields: dict[str, TemplateField]) -> TemplateField:
    """Replace an ``@field`` anchor by that field's surface forms and its ``missing`` phrase."""
    anchors: list[str] = []
    for anchor in spec.anchors:
        if anchor.startswith("@"):
            target = fields[anchor[1:]]
            anchors += [form for value in target.values.values() for form in value.surface_forms]
            anchors += [target.missing] if target.missing else []
        else:
            anchors.append(anchor)
    return TemplateField(spec.name, spec.values, spec.missing, tuple(anchors))


def words_pattern(words: str) -> str:
    """A regex matching ``words`` as whole words, any run of spaces or a hyphen between them."""
    parts = [re.escape(part) for part in re.split(r"[\s-]+", words.strip()) if part]
    return r"(?<![\w-])" + r"[\s-]*".join(parts) + r"(?![\w-])"


@dataclass(frozen=True)
class FieldMatcher:
    """The compiled regexes of one field (one alternation each, longest form first).

    Attributes:
        values: Matches any surface form of any value; ``match.lastgroup`` is ``v<index>``.
        value_names: Value name of group ``v<index>``.
        anchors: Matches any anchor, or ``None`` when the field has none.
    """

    values: re.Pattern[str]
    value_names: tuple[str, ...]
    anchors: re.Pattern[str] | None

    @classmethod
    def build(cls, spec: TemplateField) -> FieldMatcher:
        """Compile the field's forms and anchors."""
        forms = sorted(
            ((form, value.name) for value in spec.values.values() for form in value.surface_forms),
            key=lambda pair: len(pair[0]),
            reverse=True,
        )
        values = "|".join(f"(?P<v{index}>{words_pattern(form)})" for index, (form, _) in
                          enumerate(forms))  # fmt: skip
        anchors = sorted(spec.anchors, key=len, reverse=True)
        return cls(
            values=re.compile(values),
            value_names=tuple(name for _, name in forms),
            anchors=re.compile("|".join(words_pattern(anchor) for anchor in anchors))
            if anchors
            else None,
        )

    def value_of(self, match: re.Match[str]) -> str:
        """The value name of a match of :attr:`values`."""
        return self.value_names[int(str(match.lastgroup)[1:])]
