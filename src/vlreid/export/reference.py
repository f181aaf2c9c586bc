"""Reference preprocessing for an exported model, from its ``model.onnx.json`` sidecar alone.

This file imports only ``json``, NumPy and Pillow, so that a deployer can copy it (or port its
ten lines) next to an onnxruntime session. ``reid export`` checks it: on the images of its parity
check, :func:`preprocess` equals ``load_model(checkpoint).preprocess`` exactly, and the ONNX
features of its output equal PyTorch's to 1e-4. Usage::

    import json, onnxruntime
    sidecar = json.load(open("model.onnx.json"))
    session = onnxruntime.InferenceSession("model.onnx")
    features = session.run(None, {"images": preprocess([Image.open(p) for p in paths], sidecar)})[0]

The steps, as the sidecar's ``preprocessing`` states them: convert to RGB (channel order RGB,
not OpenCV's BGR); resize to exactly ``width x height`` with Pillow's filter named by
``interpolation`` (no aspect-ratio padding, no crop; skipped when the image already has that
size, as Pillow's resize would be an identity anyway); divide the 0..255 pixel values by 255
(``input_range`` [0, 1]); subtract ``mean`` and divide by ``std`` per channel; lay out as
``(N, 3, height, width)`` float32. The normalisation is computed as one float32 multiply and one
subtract, ``pixels * (1 / (255 * std)) - mean / std`` with both constants rounded from float64,
which is how the PyTorch preprocessing of :mod:`vlreid.datasets.transforms` computes it; the
textbook ``(pixels / 255 - mean) / std`` in float32 differs from it by about 1e-7.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

RESAMPLING: dict[str, Image.Resampling] = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
}


def preprocess(images: Sequence[Image.Image], sidecar: dict[str, Any]) -> np.ndarray:
    """PIL images -> the ONNX model's input, following ``sidecar["preprocessing"]`` only.

    Args:
        images: Any mode and size (converted to RGB and resized here).
        sidecar: The parsed ``model.onnx.json``.

    Returns:
        ``(N, 3, height, width)`` float32, C-contiguous.
    """
    spec = sidecar["preprocessing"]
    height, width = spec["height"], spec["width"]
    if spec["channel_order"] != "RGB" or spec["input_range"] != [0.0, 1.0]:
        raise ValueError(f"this reference handles RGB input scaled to [0, 1], not {spec}")
    std = np.asarray(spec["std"], dtype=np.float64)
    scale = (1.0 / (255.0 * std)).astype(np.float32).reshape(3, 1, 1)
    offset = (np.asarray(spec["mean"], dtype=np.float64) / std).astype(np.float32).reshape(3, 1, 1)
    batch = np.empty((len(images), 3, height, width), dtype=np.float32)
    for index, image in enumerate(images):
        image = image.convert("RGB")
        if image.size != (width, height):
            image = image.resize((width, height), RESAMPLING[spec["interpolation"]])
        pixels = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32)
        batch[index] = pixels * scale - offset
    return batch
