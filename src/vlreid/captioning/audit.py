"""``reid captions audit``: how often the attributes read from captions match human labels.

For each caption row (image errors left out) whose pid has labels, and each template field the
labels give, the caption *agrees* when the field parsed from its answer (the ``attributes``
column) equals the label. A field the answer does not mention counts as a disagreement; its
*coverage* (how often it was read at all) is reported beside the agreement.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from rich.table import Table

from vlreid.captioning.attributes import load_attribute_labels
from vlreid.captioning.shards import read_caption_folder, read_manifest
from vlreid.errors import DataFileError
from vlreid.templates import TEMPLATES, load_template


@dataclass(frozen=True)
class FieldAgreement:
    """Agreement of one field.

    Attributes:
        field: Field name.
        compared: Caption rows whose pid has a label for the field.
        read: Of those, rows whose answer gave the field.
        agreed: Of those, rows whose answer gave the labelled value.
    """

    field: str
    compared: int
    read: int
    agreed: int

    @property
    def agreement(self) -> float:
        """``agreed / compared`` (0 when nothing was compared)."""
        return self.agreed / self.compared if self.compared else 0.0

    @property
    def coverage(self) -> float:
        """``read / compared`` (0 when nothing was compared)."""
        return self.read / self.compared if self.compared else 0.0


@dataclass(frozen=True)
class AuditReport:
    """The audit of a caption folder.

    Attributes:
        folder: The caption folder.
        template: Template the captions were parsed with.
        rows: Caption rows audited (image errors left out).
        labelled: Rows whose pid has labels.
        fields: One entry per template field with labels.
    """

    folder: str
    template: str
    rows: int
    labelled: int
    fields: list[FieldAgreement]

    @property
    def overall(self) -> float:
        """Agreement over all (row, field) pairs compared."""
        compared = sum(entry.compared for entry in self.fields)
        return sum(entry.agreed for entry in self.fields) / compared if compared else 0.0

    @property
    def mean_field_agreement(self) -> float:
        """Mean of the per-field agreements (every field weighs the same)."""
        scored = [entry.agreement for entry in self.fields if entry.compared]
        return sum(scored) / len(scored) if scored else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (``reid captions audit --format json``)."""
        return {
            "folder": self.folder,
            "template": self.template,
            "rows": self.rows,
            "labelled": self.labelled,
            "overall": self.overall,
            "mean_field_agreement": self.mean_field_agreement,
            "fields": [
                {**asdict(entry), "agreement": entry.agreement, "coverage": entry.coverage}
                for entry in self.fields
            ],
        }


def audit_captions(folder: Path, attributes: Path, template: str | None = None) -> AuditReport:
    """Compare the attributes parsed from a caption folder with per-identity labels.

    Args:
        folder: Caption folder written by ``reid caption``.
        attributes: Label file (see :func:`vlreid.captioning.attributes.load_attribute_labels`).
        template: Template name or path; by default the one recorded in ``_manifest.json``.

    Returns:
        Per-field and overall agreement.

    Raises:
        DataFileError: No shards, or an unreadable label file.
    """
    captions = read_caption_folder(folder)
    chosen = load_template(template or _recorded_template(folder, captions))
    labels = load_attribute_labels(Path(attributes), chosen)
    captions = captions[captions["status"] != "image_error"]
    labelled = captions[captions["pid"].isin(list(labels))]
    counts = {name: [0, 0, 0] for name in chosen.fields}
    for pid, text in zip(labelled["pid"], labelled["attributes"], strict=True):
        parsed = json.loads(text) if isinstance(text, str) and text else {}
        for name, value in labels[int(pid)].items():
            entry = counts[name]
            entry[0] += 1
            entry[1] += name in parsed
            entry[2] += parsed.get(name) == value
    fields = [
        FieldAgreement(name, compared, read, agreed)
        for name, (compared, read, agreed) in counts.items()
        if compared
    ]
    return AuditReport(str(folder), chosen.name, len(captions), len(labelled), fields)


def _recorded_template(folder: Path, captions: pd.DataFrame) -> str:
    manifest = read_manifest(folder) or {}
    name = manifest.get("template") or (
        str(captions["template"].iloc[0]) if "template" in captions.columns else "person"
    )
    if name not in TEMPLATES:
        raise DataFileError(
            f"{folder} was captioned with template {name!r}, which is not built in; pass "
            "--template with its .toml file"
        )
    return name


def caption_rows(folder: Path, pid: int | None = None, limit: int = 10) -> pd.DataFrame:
    """The first ``limit`` rows of a caption folder (of one ``pid`` if given), by ``relpath``."""
    captions = read_caption_folder(folder)
    if pid is not None:
        captions = captions[captions["pid"] == pid]
    return captions.sort_values("relpath").head(limit).reset_index(drop=True)


def rows_table(rows: pd.DataFrame) -> Table:
    """A rich table of caption rows: relpath, pid, status and caption (or the image error)."""
    table = Table("relpath", "pid", "status", "caption")
    for row in rows.itertuples(index=False):
        text = row.caption if row.status != "image_error" else f"[red]{row.error}[/]"
        table.add_row(str(row.relpath), str(row.pid), str(row.status), str(text))
    return table


def report_table(report: AuditReport) -> Table:
    """A rich table of an audit: one line per field, then the overall agreement."""
    table = Table(
        "field",
        "labelled",
        "read",
        "agreement",
        "coverage",
        title=f"{report.folder}: {report.labelled} of {report.rows} captions have labels",
    )
    for entry in report.fields:
        table.add_row(
            entry.field,
            str(entry.compared),
            str(entry.read),
            f"{entry.agreement:.3f}",
            f"{entry.coverage:.3f}",
        )
    table.add_section()
    table.add_row("overall", "", "", f"{report.overall:.3f}", "")
    table.add_row("mean of fields", "", "", f"{report.mean_field_agreement:.3f}", "")
    return table
