"""What :class:`~vlreid.model.InferenceModel` accepts as images, and how each kind is read.

================================  ================================================================
input                             interpretation
================================  ================================================================
``str`` or ``os.PathLike``        one image file, decoded as RGB
PIL image                         one image (converted to RGB)
NumPy ``uint8`` ``(H, W, 3)``     one RGB image, channels last (as ``np.asarray(pil_image)``)
NumPy ``uint8`` ``(B, H, W, 3)``  B RGB images, channels last
tensor ``uint8`` ``(3, H, W)``    one RGB image in 0..255, channels first (``torchvision.io``)
tensor ``uint8`` ``(B, 3, H, W)`` B such images
tensor float, model's ``(H, W)``  **already preprocessed**: resized and normalised with the
                                  model's mean and std; used as is (the fast path)
tensor float, other ``(H, W)``    RGB in [0, 1] (``torchvision``'s ``to_tensor``), channels first
a list or tuple                   a batch of any of the single-image kinds above
================================  ================================================================

Everything but the fast path goes through the model's own preprocessing, the one of its training
and evaluation (:class:`~vlreid.datasets.transforms.ReIDTransform`: RGB, resize to the model's
size with its filter, then normalisation), so a path, a PIL image, its ``np.asarray`` and its
``uint8`` tensor give the same features. Each image is preprocessed on its own, so a batch gives
the features of its images one at a time.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from vlreid.datasets.cache import read_image
from vlreid.datasets.transforms import ReIDTransform
from vlreid.errors import ReIDError

ImageInput = str | os.PathLike | Image.Image | np.ndarray | torch.Tensor
"""One image or a batch: see the module's table."""

_KINDS = (
    "a path, a PIL image, a uint8 NumPy array (H, W, 3), a uint8 or float tensor (3, H, W), "
    "a batch of those, or a preprocessed float tensor (B, 3, H, W)"
)


def image_batch(images: ImageInput | Sequence[Any], transform: ReIDTransform) -> torch.Tensor:
    """``images`` (any kind of the module's table) -> a normalised ``(B, 3, H, W)`` float tensor.

    Raises:
        ReIDError: An input of another kind or shape, or an unreadable file.
    """
    height, width = transform.preprocessing.size
    if isinstance(images, torch.Tensor):
        if images.ndim == 3:
            images = images.unsqueeze(0)
        _check_channels_first(images)
        if images.is_floating_point() and tuple(images.shape[-2:]) == (height, width):
            return images  # already preprocessed
        return torch.stack([_one(image, transform) for image in images])
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return torch.stack([_one(image, transform) for image in images])
    if isinstance(images, (list, tuple)):
        if not images:
            raise ReIDError(f"no image given: expected {_KINDS}")
        return torch.stack([_one(image, transform) for image in images])
    return _one(images, transform).unsqueeze(0)


def _one(image: Any, transform: ReIDTransform) -> torch.Tensor:
    """One image of any single kind -> normalised ``(3, H, W)``."""
    if isinstance(image, (str, os.PathLike)):
        return transform(read_image(Path(image)))
    if isinstance(image, Image.Image):
        return transform(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ReIDError(
                f"a NumPy image must be uint8 (H, W, 3) RGB, got {image.dtype} {image.shape}"
            )
        return transform(Image.fromarray(image))
    if isinstance(image, torch.Tensor):
        _check_channels_first(image.unsqueeze(0) if image.ndim == 3 else image)
        height, width = transform.preprocessing.size
        if image.is_floating_point():
            if tuple(image.shape[-2:]) == (height, width):
                return image  # already preprocessed
            if image.min() < 0 or image.max() > 1:
                raise ReIDError(
                    f"a float tensor of {tuple(image.shape[-2:])} pixels must hold RGB values in "
                    f"[0, 1] (values in [{float(image.min()):.2f}, {float(image.max()):.2f}]); "
                    f"a normalised one must already be at the model's {height}x{width}"
                )
            image = (image * 255).round()
        pixels = image.detach().cpu().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
        return transform(Image.fromarray(pixels))
    raise ReIDError(f"cannot read an image from {type(image).__name__}: expected {_KINDS}")


def _check_channels_first(images: torch.Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ReIDError(
            f"an image tensor must be (3, H, W) or (B, 3, H, W) RGB, got {tuple(images.shape)}"
        )
