"""The interface of a captioning backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image


@dataclass(frozen=True)
class CaptionItem:
    """One image to caption.

    Attributes:
        relpath: Path relative to the dataset root (the join key).
        pid: Identity as named by the dataset.
        image: The decoded RGB image, or ``None`` for backends that read no pixels.
    """

    relpath: str
    pid: int
    image: Image.Image | None = None


class Captioner(Protocol):
    """A backend that answers the template's instruction for a batch of images.

    Attributes:
        name: Backend name, the ``captioner`` column (``llava``, ``attributes``).
        model: What produced the answers, the ``model`` column (a hub id, a folder, a file).
        needs_images: Whether :meth:`describe` reads ``CaptionItem.image``; when ``False`` the
            run does not decode images.
    """

    name: str
    model: str
    needs_images: bool

    def settings(self) -> dict[str, Any]:
        """Settings that change the answers (recorded in ``_manifest.json``, checked on resume)."""
        ...

    def describe(self, items: Sequence[CaptionItem]) -> list[str]:
        """The raw answer for each item, in order (an empty string when there is none)."""
        ...
