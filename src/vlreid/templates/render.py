"""Render a template's caption from field values, and fit any caption to CLIP's 77 tokens."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

from vlreid.templates.template import Template, placeholder_fields

CLIP_CONTEXT_LENGTH = 77
"""CLIP's text context, start and end tokens included."""


@functools.lru_cache(maxsize=1)
def _clip_tokenizer():  # type: ignore[no-untyped-def]
    # open_clip ships the CLIP BPE vocabulary inside the package: nothing is downloaded.
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


@functools.lru_cache(maxsize=65536)
def count_clip_tokens(text: str) -> int:
    """Number of CLIP BPE tokens of ``text``, start and end tokens included."""
    return len(_clip_tokenizer().encode(text)) + 2


def fit_to_context(text: str, context_length: int = CLIP_CONTEXT_LENGTH) -> str:
    """Cut ``text`` at a word boundary so that it fits ``context_length`` CLIP tokens.

    A cut caption ends with a full stop. Text that fits is returned unchanged.

    Args:
        text: Any caption.
        context_length: Token budget, start and end tokens included.

    Returns:
        The longest word prefix of ``text`` (plus ``"."`` when cut) that fits.
    """
    if count_clip_tokens(text) <= context_length:
        return text
    words = text.split()

    def cut(count: int) -> str:
        return " ".join(words[:count]).rstrip(",;:- ") + "."

    low, high = 0, len(words)  # cut(low) fits (or low == 0); cut(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        if count_clip_tokens(cut(middle)) <= context_length:
            low = middle
        else:
            high = middle
    return cut(low) if low else ""


def render_caption(template: Template, attributes: Mapping[str, str | None]) -> str:
    """The template's caption for the given field values, fitted to 77 CLIP tokens.

    Unknown fields (absent, ``None`` or not a value of the field) are handled by the clauses: a
    clause or list item whose fields are all unknown is dropped, unless marked ``always``; an
    unknown field inside a kept clause is written as its ``missing`` phrase.

    Args:
        template: The template.
        attributes: Field name -> value name (``{"gender": "male", "bag": "none"}``).

    Returns:
        A single sentence, e.g. ``"A photo of a young man with short hair, wearing ..."``.
    """
    known = {
        name: attributes[name]
        for name, spec in template.fields.items()
        if attributes.get(name) in spec.values
    }
    pieces: list[str] = []
    for clause in template.clauses:
        if clause.items:
            items = [
                _fill(template, item, known).strip()
                for item in clause.items
                if _has_any(item, known)
            ]
            if items:
                pieces.append(clause.prefix + _join_list(items))
        elif clause.always or _has_any(clause.text, known):
            pieces.append(_fill(template, clause.text, known))
    return fit_to_context(tidy("".join(pieces)))


def _has_any(text: str, known: Mapping[str, str]) -> bool:
    return any(name in known for name in placeholder_fields(text))


def _fill(template: Template, text: str, known: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name, _, attribute = match.group(1).partition(".")
        spec = template.fields[name]
        if name not in known:
            return "" if attribute == "article" else spec.missing
        value = spec.values[known[name]]
        return value.article if attribute == "article" else value.phrase

    return re.sub(r"\{([\w.]+)\}", replace, text)


def _join_list(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def tidy(text: str) -> str:
    """Collapse spaces, drop spaces before punctuation, write "an" before a vowel, capitalise."""
    text = " ".join(text.split())
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)
    return text[:1].upper() + text[1:]
