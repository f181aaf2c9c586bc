"""How images are resized and normalised for a backbone: :class:`Preprocessing` (no torch).

A plain frozen dataclass, so that the run config (:mod:`vlreid.config`) and a checkpoint's
metadata can hold it without importing torch or PIL; the transforms that apply it are in
:mod:`vlreid.datasets.transforms`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

INTERPOLATION_NAMES: tuple[str, ...] = ("bicubic", "bilinear", "nearest")


@dataclass(frozen=True)
class Preprocessing:
    """How images are resized and normalised; stored in every checkpoint.

    Attributes:
        size: Output ``(height, width)`` in pixels.
        mean: Per-channel RGB mean of the backbone's pretraining, in [0, 1].
        std: Per-channel RGB standard deviation of the backbone's pretraining.
        interpolation: Resize filter, one of :data:`INTERPOLATION_NAMES`.
    """

    size: tuple[int, int] = (256, 128)
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATION_NAMES:
            raise ValueError(
                f"unknown interpolation {self.interpolation!r}; expected one of "
                f"{sorted(INTERPOLATION_NAMES)}"
            )
        if len(self.size) != 2 or min(self.size) <= 0:
            raise ValueError(f"size must be (height, width) > 0, got {self.size!r}")

    @classmethod
    def clip(cls, size: tuple[int, int] = (256, 128)) -> Preprocessing:
        """CLIP's normalisation (open_clip ``OPENAI_DATASET_MEAN/STD``)."""
        return cls(size=size, mean=CLIP_MEAN, std=CLIP_STD)

    @classmethod
    def imagenet(cls, size: tuple[int, int] = (256, 128)) -> Preprocessing:
        """ImageNet normalisation (torchvision models, torchreid, fast-reid)."""
        return cls(size=size, mean=IMAGENET_MEAN, std=IMAGENET_STD)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (lists instead of tuples)."""
        values = asdict(self)
        return {
            key: list(value) if isinstance(value, tuple) else value for key, value in values.items()
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Preprocessing:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        unknown = set(values) - {"size", "mean", "std", "interpolation"}
        if unknown:
            raise ValueError(f"unknown preprocessing keys {sorted(unknown)}")
        return cls(
            size=tuple(int(v) for v in values.get("size", cls.size)),  # type: ignore[arg-type]
            mean=tuple(float(v) for v in values.get("mean", cls.mean)),  # type: ignore[arg-type]
            std=tuple(float(v) for v in values.get("std", cls.std)),  # type: ignore[arg-type]
            interpolation=str(values.get("interpolation", cls.interpolation)),
        )
