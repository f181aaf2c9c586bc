"""The captioning backends of a run: which one, built from the run's options.

``llava`` (a LLaVA-family vision-language model, :mod:`vlreid.captioning.llava`) or ``attributes``
(human or synthetic attribute labels rendered into the template,
:mod:`vlreid.captioning.attributes`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from vlreid.captioning.protocol import Captioner
from vlreid.errors import ReIDError
from vlreid.templates import Template

if TYPE_CHECKING:
    from vlreid.captioning.llava import LlavaSettings

CAPTIONERS: tuple[str, ...] = ("llava", "attributes")


class BackendOptions(Protocol):
    """What choosing a backend reads of a run's options (``CaptionRunConfig`` has it)."""

    captioner: str
    llava: LlavaSettings
    attributes: Path | None


def own_attributes(rows: pd.DataFrame, dataset_root: Path) -> Path | None:
    """The label file a dataset ships, if any: ``attributes.parquet`` of a synthetic dataset."""
    path = dataset_root / "attributes.parquet"
    is_synthetic = str(rows["dataset"].iloc[0]) == "synthetic"
    return path if is_synthetic and path.is_file() else None


def build_captioner(config: BackendOptions, template: Template, local_rank: int) -> Captioner:
    """The backend named by ``config.captioner``.

    Raises:
        ReIDError: Unknown backend, or ``attributes`` without a label file.
    """
    if config.captioner == "llava":
        from vlreid.captioning.llava import LlavaCaptioner

        return LlavaCaptioner(config.llava, template.instruction, local_rank)
    if config.captioner == "attributes":
        from vlreid.captioning.attributes import AttributesCaptioner, load_attribute_labels

        if config.attributes is None:
            raise ReIDError(
                "--captioner attributes needs --attributes FILE (the per-identity label table; "
                "a synthetic dataset's own DATA/attributes.parquet is used when it exists)"
            )
        labels = load_attribute_labels(Path(config.attributes), template)
        return AttributesCaptioner(labels, template, Path(config.attributes).name)
    raise ReIDError(f"unknown captioner {config.captioner!r}: expected one of {CAPTIONERS}")


def captioner_identity(config: BackendOptions, captioner: Captioner | None) -> dict[str, Any]:
    """``captioner``, ``model`` and ``settings`` of the run, known before any model is loaded.

    Raises:
        ReIDError: Unknown backend.
    """
    if captioner is not None:
        return {
            "captioner": captioner.name,
            "model": captioner.model,
            "settings": captioner.settings(),
        }
    if config.captioner == "llava":
        from vlreid.captioning.llava import generation_settings

        settings = generation_settings(config.llava)
        return {"captioner": "llava", "model": config.llava.model, "settings": settings}
    if config.captioner == "attributes":
        source = Path(config.attributes).name if config.attributes else ""
        return {"captioner": "attributes", "model": source, "settings": {}}
    raise ReIDError(f"unknown captioner {config.captioner!r}: expected one of {CAPTIONERS}")
