"""The ``attributes`` backend: the caption template filled from human attribute labels.

Labels are per identity: a table with an integer ``pid`` column and one string column per
template field (the synthetic dataset's ``attributes.parquet`` is one), as Parquet or CSV.
Values must be those of the template's vocabulary (:data:`vlreid.attributes.PERSON_FIELDS`); an
empty or missing value leaves the field out of the caption. Images whose pid has no labels
(distractors, unlabelled identities) get an empty answer, hence ``status = unparsed`` and the
template's empty caption ("A photo of a person.").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlreid.captioning.protocol import CaptionItem
from vlreid.errors import DataFileError
from vlreid.templates import Template, render_caption

logger = logging.getLogger(__name__)

AttributeLabels = dict[int, dict[str, str]]
"""pid -> {field: value}."""


def load_attribute_labels(path: Path, template: Template) -> AttributeLabels:
    """Read per-identity labels for the template's fields.

    Args:
        path: A ``.parquet`` or ``.csv`` table (``pid`` + field columns), or a Market-1501 /
            DukeMTMC-reID attribute annotation ``.mat`` file (see
            :mod:`vlreid.captioning.annotations`).
        template: The template whose fields to read.

    Returns:
        pid -> {field: value} with the known fields of each identity.

    Raises:
        DataFileError: Missing file, no ``pid`` column, no field column, or values outside the
            template's vocabulary.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"attribute file not found: {path}")
    if path.suffix == ".mat":
        from vlreid.captioning.annotations import load_annotation_mat

        return load_annotation_mat(path, template)
    try:
        table = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    except (OSError, ValueError) as error:
        raise DataFileError(f"cannot read attribute file {path}: {error}") from error
    return labels_from_table(table, template, str(path))


def labels_from_table(table: Any, template: Template, source: str) -> AttributeLabels:
    """Turn a DataFrame (``pid`` + field columns) into :data:`AttributeLabels`, validated."""
    columns = [name for name in template.fields if name in table.columns]
    if "pid" not in table.columns or not columns:
        raise DataFileError(
            f"{source}: expected a 'pid' column and columns named after the {template.name} "
            f"template's fields {list(template.fields)}; found {list(table.columns)}"
        )
    labels: AttributeLabels = {}
    for row in table[["pid", *columns]].itertuples(index=False):
        pid, values = int(row[0]), row[1:]
        known = {}
        for name, value in zip(columns, values, strict=True):
            if not isinstance(value, str) or not value:
                continue
            if value not in template.fields[name].values:
                raise DataFileError(
                    f"{source}: pid {pid} has {name}={value!r}; expected one of "
                    f"{list(template.fields[name].values)}"
                )
            known[name] = value
        labels[pid] = known
    return labels


class AttributesCaptioner:
    """Renders the template from labels; no model, no pixels.

    Args:
        labels: Per-identity labels (:func:`load_attribute_labels`).
        template: The template to render.
        source: Where the labels came from (the ``model`` column), e.g. the file name.
    """

    name = "attributes"
    needs_images = False

    def __init__(self, labels: AttributeLabels, template: Template, source: str) -> None:
        self.labels = labels
        self.template = template
        self.model = source

    def settings(self) -> dict[str, Any]:
        """Nothing changes the answers but the labels (the ``model`` entry)."""
        return {}

    def describe(self, items: Sequence[CaptionItem]) -> list[str]:
        """The rendered template for each item's pid, or ``""`` when the pid has no labels."""
        return [
            render_caption(self.template, self.labels[item.pid]) if item.pid in self.labels else ""
            for item in items
        ]
