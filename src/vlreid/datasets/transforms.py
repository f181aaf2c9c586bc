"""Image preprocessing and training augmentation for ReID crops.

A transform works in two stages so that an in-memory cache can store the first one:

1. :meth:`ReIDTransform.resize`: PIL image -> resized ``uint8`` tensor ``(3, H, W)``
   (deterministic; this is what :class:`vlreid.datasets.cache.PackedImageCache` stores);
2. :meth:`ReIDTransform.augment`: ``uint8`` ``(3, H, W)`` -> normalised ``float32`` ``(3, H, W)``,
   with the random operations of training drawn from an explicit :class:`torch.Generator`.

The training pipeline is the one of torchreid, reid-strong-baseline and CLIP-ReID: bicubic resize
to 256x128, horizontal flip (p 0.5), zero padding of 10 pixels then a random crop back to the
size, scaling to [0, 1], normalisation, random erasing. The pixels equal those of the torchvision
chain ``Resize -> RandomHorizontalFlip -> Pad -> RandomCrop -> ToTensor -> Normalize``; only the
random draws differ, because ours come from a generator that the data loader seeds.

Random erasing (Zhong et al., "Random Erasing Data Augmentation", AAAI 2020) follows CLIP-ReID,
which uses timm's ``RandomErasing(probability=0.5, mode="pixel", max_count=1)``: one rectangle of
2% to 1/3 of the image area, aspect ratio log-uniform in [0.3, 1/0.3], filled with per-pixel
standard normal noise in the normalised space. torchreid instead erases up to 40% of the area
with a constant per-channel value (the CIFAR mean, written into the already normalised tensor).
We default to CLIP-ReID's choice because our backbones are CLIP's and the noise fill does not
teach the model a constant colour patch; ``erasing_fill="mean"`` fills with zeros in the
normalised space, i.e. the dataset mean colour, for the torchreid-like variant.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from PIL import Image

from vlreid.preprocessing import (  # noqa: F401 (re-exported for the transforms' users)
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Preprocessing,
)

INTERPOLATIONS: dict[str, Image.Resampling] = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
}
ERASING_FILLS: tuple[str, ...] = ("pixel", "mean")


class ReIDTransform:
    """Resize then normalise: the evaluation transform, and the base of the training one.

    Args:
        preprocessing: Output size, normalisation and resize filter.
    """

    def __init__(self, preprocessing: Preprocessing) -> None:
        self.preprocessing = preprocessing
        mean = torch.tensor(preprocessing.mean, dtype=torch.float64).view(3, 1, 1)
        std = torch.tensor(preprocessing.std, dtype=torch.float64).view(3, 1, 1)
        # (x / 255 - mean) / std as one multiply and one subtract, in place.
        self._scale = (1.0 / (255.0 * std)).to(torch.float32)
        self._offset = (mean / std).to(torch.float32)

    def resize(self, image: Image.Image) -> torch.Tensor:
        """Convert to RGB and resize with the configured filter.

        Returns:
            ``uint8`` tensor ``(3, H, W)``.
        """
        height, width = self.preprocessing.size
        image = image.convert("RGB")
        if image.size != (width, height):
            image = image.resize((width, height), INTERPOLATIONS[self.preprocessing.interpolation])
        # Channels-first and contiguous: float ops on a permuted view run several times slower.
        return torch.from_numpy(np.ascontiguousarray(np.asarray(image).transpose(2, 0, 1)))

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """``uint8`` ``(3, H, W)`` -> ``float32`` ``(3, H, W)``, normalised for the backbone."""
        return pixels.to(torch.float32).mul_(self._scale).sub_(self._offset)

    def augment(
        self, pixels: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The part after resizing; for evaluation, normalisation only."""
        return self.normalize(pixels)

    def __call__(
        self, image: Image.Image, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """PIL image -> normalised ``float32`` tensor ``(3, H, W)``."""
        return self.augment(self.resize(image), generator)


class TrainTransform(ReIDTransform):
    """Resize, flip, pad + random crop, normalise, random erasing.

    Args:
        preprocessing: Output size, normalisation and resize filter.
        flip_probability: Probability of a horizontal flip.
        padding: Zero padding on each side before the random crop back to ``size``.
        erasing_probability: Probability of erasing one rectangle (0 disables erasing).
        erasing_area: Range of the erased fraction of the image area.
        erasing_aspect: Range of the rectangle's height/width ratio, sampled log-uniformly.
        erasing_fill: ``"pixel"`` (standard normal noise per pixel, CLIP-ReID/timm) or
            ``"mean"`` (zeros in normalised space: the mean colour).
    """

    def __init__(
        self,
        preprocessing: Preprocessing,
        flip_probability: float = 0.5,
        padding: int = 10,
        erasing_probability: float = 0.5,
        erasing_area: tuple[float, float] = (0.02, 1 / 3),
        erasing_aspect: tuple[float, float] = (0.3, 1 / 0.3),
        erasing_fill: str = "pixel",
    ) -> None:
        super().__init__(preprocessing)
        if erasing_fill not in ERASING_FILLS:
            raise ValueError(f"unknown erasing_fill {erasing_fill!r}; expected {ERASING_FILLS}")
        self.flip_probability = flip_probability
        self.padding = padding
        self.erasing_probability = erasing_probability
        self.erasing_area = erasing_area
        self.erasing_aspect = erasing_aspect
        self.erasing_fill = erasing_fill

    def augment(
        self, pixels: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Random flip, pad + crop, normalise, erase.

        Args:
            pixels: ``uint8`` ``(3, H, W)`` at the configured size.
            generator: Source of every random draw (the global generator when ``None``).

        Returns:
            ``float32`` ``(3, H, W)``.
        """
        if _uniform(generator) < self.flip_probability:
            pixels = pixels.flip(-1)
        if self.padding > 0:
            pixels = self._pad_and_crop(pixels, generator)
        image = self.normalize(pixels)
        if self.erasing_probability > 0 and _uniform(generator) < self.erasing_probability:
            image = self._erase(image, generator)
        return image

    def _pad_and_crop(
        self, pixels: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        # Equals torchvision Pad(padding, fill=0) + RandomCrop(size) without building the
        # padded image: copy the overlap of the crop window with the original into zeros.
        _, height, width = pixels.shape
        top = int(torch.randint(0, 2 * self.padding + 1, (1,), generator=generator)) - self.padding
        left = int(torch.randint(0, 2 * self.padding + 1, (1,), generator=generator)) - self.padding
        output = torch.zeros_like(pixels)
        source_rows = slice(max(top, 0), min(top + height, height))
        source_cols = slice(max(left, 0), min(left + width, width))
        target_rows = slice(max(-top, 0), max(-top, 0) + source_rows.stop - source_rows.start)
        target_cols = slice(max(-left, 0), max(-left, 0) + source_cols.stop - source_cols.start)
        output[:, target_rows, target_cols] = pixels[:, source_rows, source_cols]
        return output

    def _erase(self, image: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        channels, height, width = image.shape
        area = height * width
        log_low, log_high = math.log(self.erasing_aspect[0]), math.log(self.erasing_aspect[1])
        # Up to 10 attempts to draw a rectangle that fits, as timm does.
        for _ in range(10):
            target_area = area * _uniform(generator, *self.erasing_area)
            aspect = math.exp(_uniform(generator, log_low, log_high))
            erase_height = int(round(math.sqrt(target_area * aspect)))
            erase_width = int(round(math.sqrt(target_area / aspect)))
            if 0 < erase_height < height and 0 < erase_width < width:
                top = int(torch.randint(0, height - erase_height + 1, (1,), generator=generator))
                left = int(torch.randint(0, width - erase_width + 1, (1,), generator=generator))
                image = image.clone()
                if self.erasing_fill == "pixel":
                    fill = torch.randn((channels, erase_height, erase_width), generator=generator)
                else:
                    fill = torch.zeros((channels, erase_height, erase_width))
                image[:, top : top + erase_height, left : left + erase_width] = fill
                return image
        return image


def _uniform(generator: torch.Generator | None, low: float = 0.0, high: float = 1.0) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def build_train_transform(preprocessing: Preprocessing, **options: Any) -> TrainTransform:
    """The ReID training transform; ``options`` are those of :class:`TrainTransform`."""
    return TrainTransform(preprocessing, **options)


def build_eval_transform(preprocessing: Preprocessing) -> ReIDTransform:
    """Resize + normalise, rebuilt by evaluation from the checkpoint's :class:`Preprocessing`."""
    return ReIDTransform(preprocessing)
