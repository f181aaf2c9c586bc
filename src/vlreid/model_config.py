"""The ReID model's config, :class:`ModelConfig`: architecture and preprocessing (no torch).

It is the ``[model]`` table of a run config (:mod:`vlreid.config`), the architecture that
:class:`vlreid.model.backbone.ReIDModel` is built from, and the ``reid.backbone`` metadata of a
``model.safetensors`` (:meth:`ModelConfig.to_dict`). Plain dataclass code, so that reading a
config or a checkpoint's metadata imports neither torch nor open_clip.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from vlreid.errors import ReIDError
from vlreid.preprocessing import CLIP_MEAN, CLIP_STD, INTERPOLATION_NAMES, Preprocessing


@dataclass(frozen=True)
class ModelConfig:
    """The ReID model: its architecture and input preprocessing (``[model]``).

    One dataclass from the TOML table down to :class:`~vlreid.model.backbone.ReIDModel` and the
    ``reid.backbone`` metadata of ``model.safetensors``. The last three fields are not keys of
    ``[model]``: ``num_classes`` and ``sie_cameras`` come from the dataset
    (:meth:`for_dataset`, a ``dataclasses.replace``), and ``quick_gelu`` is set in TOML through
    ``clip_config.quick_gelu``.

    Attributes:
        clip_model: open_clip model name (``"ViT-B-16"``, ``"RN50"``) when ``clip_config`` is None.
        clip_config: Explicit open_clip config (``embed_dim``, ``vision_cfg``, ``text_cfg``,
            ``quick_gelu``), e.g. the tiny CLIP of ``vlreid.testing.clip.tiny_clip_config``.
        pretrained: open_clip pretrained tag (``"openai"``) or a local weights file; None
            initialises randomly (tests, synthetic runs).
        image_size: Input ``(height, width)``.
        stride: ViT patch stride (12 = overlapping patches); None means the patch size. Ignored
            for ResNets.
        sie: Add a camera embedding (SIE) to the CLS token; the number of cameras comes from the
            dataset (``sie_cameras``). True whenever ``sie_cameras`` > 0.
        sie_coefficient: Scale of the SIE vector (CLIP-ReID 3.0; SVLL-ReID 1.0).
        mean: Per-channel RGB mean of the normalisation.
        std: Per-channel RGB standard deviation of the normalisation.
        interpolation: Resize filter of evaluation and inference (``bicubic``, ``bilinear``,
            ``nearest``): the one stored with the weights (:meth:`preprocessing`), used by
            ``load_model``, ``reid evaluate``, the ONNX sidecar and the stage-1 feature cache.
            ``bilinear`` as CLIP-ReID's ``val_transforms`` (torchvision ``T.Resize``'s default).
        train_interpolation: Resize filter of the training augmentation
            (:meth:`train_preprocessing`): ``bicubic`` as CLIP-ReID's ``T.Resize(...,
            interpolation=3)``.
        quick_gelu: Use QuickGELU, as OpenAI's weights do; ``clip_config["quick_gelu"]`` wins.
        sie_cameras: Cameras of the SIE embedding (derived; 0 without SIE).
        num_classes: Training identities, the classifier outputs (derived; 0 builds no
            classifiers, as in a saved inference model).
    """

    clip_model: str = "ViT-B-16"
    clip_config: Mapping[str, Any] | None = None
    pretrained: str | None = None
    image_size: tuple[int, int] = (256, 128)
    stride: int | None = None
    sie: bool = False
    sie_coefficient: float = 3.0
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    interpolation: str = "bilinear"
    train_interpolation: str = "bicubic"
    quick_gelu: bool = True
    sie_cameras: int = 0
    num_classes: int = 0

    def __post_init__(self) -> None:
        size = tuple(int(value) for value in self.image_size)
        if len(size) != 2 or min(size) <= 0:
            raise ReIDError(f"model image_size must be (height, width) > 0, got {size}")
        object.__setattr__(self, "image_size", size)
        if self.stride is not None and self.stride <= 0:
            raise ReIDError(f"model stride must be a positive integer, got {self.stride}")
        if self.sie_cameras < 0 or self.num_classes < 0:
            raise ReIDError("model sie_cameras and num_classes must be >= 0")
        for key in ("interpolation", "train_interpolation"):
            if getattr(self, key) not in INTERPOLATION_NAMES:
                raise ReIDError(
                    f"model {key} = {getattr(self, key)!r} is not one of "
                    f"{list(INTERPOLATION_NAMES)}"
                )
        if self.sie_cameras:
            object.__setattr__(self, "sie", True)

    def preprocessing(self) -> Preprocessing:
        """The :class:`Preprocessing` of evaluation and inference, stored with the weights."""
        return Preprocessing(self.image_size, self.mean, self.std, self.interpolation)

    def train_preprocessing(self) -> Preprocessing:
        """The :class:`Preprocessing` the training augmentation starts from (its resize)."""
        return replace(self.preprocessing(), interpolation=self.train_interpolation)

    def for_dataset(self, num_classes: int, num_cameras: int) -> ModelConfig:
        """This config with the dataset's fields filled: classes, and cameras if ``sie``."""
        return replace(self, num_classes=num_classes, sie_cameras=num_cameras if self.sie else 0)

    def to_dict(self) -> dict[str, Any]:
        """The architecture as JSON values: the fields a ``ReIDModel`` is built from.

        This is ``reid.backbone`` of ``model.safetensors`` (the preprocessing fields are stored
        beside it as ``reid.preprocessing``); :meth:`from_dict` reads it back.
        """
        data = {key: getattr(self, key) for key in ARCHITECTURE_FIELDS}
        data["image_size"] = list(self.image_size)
        data["clip_config"] = copy.deepcopy(dict(self.clip_config)) if self.clip_config else None
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """A config from :meth:`to_dict` (or any subset of the fields; the rest keep defaults).

        Raises:
            ReIDError: An unknown key (the message lists the valid ones).
        """
        valid = [field.name for field in fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ReIDError(f"unknown backbone option(s) {unknown}; valid options: {valid}")
        values = dict(data)
        for key in ("image_size", "mean", "std"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


ARCHITECTURE_FIELDS: tuple[str, ...] = (
    "clip_model",
    "clip_config",
    "pretrained",
    "quick_gelu",
    "image_size",
    "stride",
    "sie_cameras",
    "sie_coefficient",
    "num_classes",
)
"""What :meth:`ModelConfig.to_dict` writes (``reid.backbone``), in its historical order."""
NOT_IN_MODEL_TABLE: tuple[str, ...] = ("quick_gelu", "sie_cameras", "num_classes")
"""Fields of :class:`ModelConfig` that ``[model]`` does not accept (see its docstring)."""
