"""Parse a captioner's answer into template fields, and repair it into a canonical caption.

Statuses (the ``status`` column of the caption shards):

- ``ok``: the answer follows the template: every field was read and the answer is the canonical
  caption of those fields (up to case, spacing and the final full stop).
- ``repaired``: some fields were read but the answer does not follow the template; the caption is
  rebuilt from the fields read (unknown fields are left out, see
  :func:`vlreid.templates.render_caption`).
- ``unparsed``: no field was read; the caption is the normalised answer cut to 77 CLIP tokens
  (or the template's empty caption, "A photo of a person.", when the answer is empty).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from vlreid.templates.render import fit_to_context, render_caption, tidy
from vlreid.templates.template import FieldMatcher, Template

ANCHOR_WINDOW_WORDS = 3
"""How many words before an anchor ("hair", "coat") may hold its value ("short", "red")."""

CLAUSE_BREAK = re.compile(r"[,.;:!?]|\b(?:and|with|wearing|carrying|in)\b")
"""Where the search for an anchored value stops ("white trousers and shoes": no shoe colour)."""


@dataclass(frozen=True)
class ParsedAnswer:
    """A captioner's answer, read against a template.

    Attributes:
        caption: The caption to store (at most 77 CLIP tokens).
        attributes: The fields read, field name -> value name.
        status: ``ok``, ``repaired`` or ``unparsed``.
    """

    caption: str
    attributes: dict[str, str] = field(default_factory=dict)
    status: str = "ok"


def normalize_answer(text: str) -> str:
    """Undo tokenizer and chat artefacts before parsing.

    Word-level tokenizers decode with spaces around punctuation (``"a man , wearing a t - shirt
    ."``); chat models may quote the sentence or prefix it with a role. The result is one line
    with single spaces and no space before punctuation.
    """
    text = text.strip()
    text = re.sub(r"^(assistant|answer)\s*:\s*", "", text, flags=re.IGNORECASE)
    text = text.strip().strip("\"'`").strip()
    text = re.sub(r"(\w)\s+-\s+(\w)", r"\1-\2", text)
    text = re.sub(r"\s+'\s*s\b", "'s", text)
    return tidy(text) if text else ""


def parse_fields(text: str, template: Template) -> dict[str, str]:
    """Read the template's fields from free text.

    A field without anchors takes the value whose phrase or synonym occurs first (the longest
    form wins at the same position). A field with anchors (colours, hair length) takes the value
    nearest before the first anchor that has one, at most :data:`ANCHOR_WINDOW_WORDS` words
    before it and within the same clause (no punctuation in between).

    Args:
        text: An answer (normalised or not; matching ignores case).
        template: The template whose fields to read.

    Returns:
        Field name -> value name, for the fields found.
    """
    lowered = normalize_answer(text).lower()
    found: dict[str, str] = {}
    for name in template.fields:
        matcher = template.matchers[name]
        value = (
            _anchored_value(lowered, matcher) if matcher.anchors else _first_value(lowered, matcher)
        )
        if value is not None:
            found[name] = value
    return found


def parse_answer(raw: str, template: Template) -> ParsedAnswer:
    """Parse an answer and build the caption to store (see the module docstring for statuses).

    Args:
        raw: The captioner's decoded answer.
        template: The template the captioner was asked to follow.

    Returns:
        The caption, the fields read and the status.
    """
    answer = normalize_answer(raw)
    attributes = parse_fields(answer, template)
    if not attributes:
        caption = fit_to_context(answer) if answer else render_caption(template, {})
        return ParsedAnswer(caption or render_caption(template, {}), {}, "unparsed")
    canonical = render_caption(template, attributes)
    follows = len(attributes) == len(template.fields) and _same_sentence(answer, canonical)
    return ParsedAnswer(canonical, attributes, "ok" if follows else "repaired")


def _same_sentence(first: str, second: str) -> bool:
    def key(text: str) -> str:
        return " ".join(text.lower().rstrip(" .").split())

    return key(first) == key(second)


def _first_value(text: str, matcher: FieldMatcher) -> str | None:
    # Leftmost match; alternatives are longest first, so the longest form wins at a position.
    match = matcher.values.search(text)
    return None if match is None else matcher.value_of(match)


def _anchored_value(text: str, matcher: FieldMatcher) -> str | None:
    for anchor in matcher.anchors.finditer(text) if matcher.anchors else ():
        window = CLAUSE_BREAK.split(text[: anchor.start()])[-1]
        window = " ".join(window.split()[-ANCHOR_WINDOW_WORDS:])
        matches = list(matcher.values.finditer(window))
        if matches:
            return matcher.value_of(matches[-1])  # the nearest to the anchor
    return None
