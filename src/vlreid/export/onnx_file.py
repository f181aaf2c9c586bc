"""``reid export --format onnx``: the image encoder alone as ONNX, with a JSON sidecar.

The graph is :class:`~vlreid.model.backbone.ReIDModel`'s inference path (image encoder, SIE when
the model has it, concatenation and L2 normalisation; no text tower, no classifier), traced by
PyTorch's TorchScript-based exporter at a pinned opset (:data:`OPSET`) with a dynamic batch axis.
Input ``images``: float32 ``(N, 3, H, W)``, preprocessed as the sidecar says; models with a
camera embedding take ``camids`` int64 ``(N,)`` as a second input. Output ``features``: float32
``(N, D)``, L2-normalised.

``model.onnx.json`` beside it holds every fact a deployer needs (:func:`build_sidecar`); the
reference preprocessing that reads it is :func:`vlreid.export.reference.preprocess`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vlreid.errors import ReIDError
from vlreid.model import InferenceModel, load_model
from vlreid.model.folder import resolve_weights

logger = logging.getLogger(__name__)

OPSET = 17
SIDECAR_FORMAT = "vlreid-onnx-sidecar"
SIDECAR_VERSION = 1


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote.

    Attributes:
        path: The ``.onnx`` file.
        sidecar_path: ``<path>.json``.
        sidecar: Its contents.
        model: The PyTorch model it was exported from (``load_model`` of the checkpoint).
    """

    path: Path
    sidecar_path: Path
    sidecar: dict[str, Any]
    model: InferenceModel


class ImageEncoder(nn.Module):
    """The traced module: ``images (N, 3, H, W) [, camids (N,)] -> features (N, D)``."""

    def __init__(self, model: InferenceModel) -> None:
        super().__init__()
        self.model = model.model.eval()

    def forward(self, images: torch.Tensor, camids: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(images, camids)


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def build_sidecar(model: InferenceModel, weights: Path, onnx_name: str) -> dict[str, Any]:
    """The ``model.onnx.json`` of ``model`` (loaded from ``weights``)."""
    from vlreid import __version__
    from vlreid.model.weights import checkpoint_provenance

    preprocessing = model.preprocessing
    height, width = preprocessing.size
    camera_count = model.model.config.sie_cameras
    inputs: list[dict[str, Any]] = [
        {
            "name": "images",
            "dtype": "float32",
            "layout": "NCHW",
            "shape": ["batch", 3, height, width],
        }
    ]
    if model.uses_camids:
        inputs.append(
            {"name": "camids", "dtype": "int64", "shape": ["batch"], "range": [0, camera_count - 1]}
        )
    return {
        "format": SIDECAR_FORMAT,
        "format_version": SIDECAR_VERSION,
        "model": onnx_name,
        "opset": OPSET,
        "dynamic_axes": {"batch": "axis 0 of every input and output"},
        "inputs": inputs,
        "outputs": [
            {
                "name": "features",
                "dtype": "float32",
                "shape": ["batch", model.feature_dim],
                "feature_size": model.feature_dim,
                "l2_normalized": True,
                "compare_with": "cosine similarity (dot product); squared euclidean ranks alike",
            }
        ],
        "preprocessing": {
            "height": height,
            "width": width,
            "resize": "stretch to exactly width x height (no padding, no crop)",
            "interpolation": preprocessing.interpolation,
            "resize_library": "Pillow (PIL.Image.resize)",
            "channel_order": "RGB",
            "input_range": [0.0, 1.0],
            "pixel_scale": "uint8 values / 255",
            "mean": list(preprocessing.mean),
            "std": list(preprocessing.std),
            "formula": "(pixel / 255 - mean) / std, per channel",
            "reference": "vlreid.export.reference.preprocess (PIL + NumPy)",
        },
        "source": {
            "checkpoint": weights.name,
            "sha256": file_sha256(weights),
            "package": "vlreid",
            "version": __version__,
            "provenance": checkpoint_provenance(model.metadata),
        },
    }


def export_onnx(checkpoint: str | Path, out: str | Path, opset: int = OPSET) -> OnnxExport:
    """Export the image encoder of ``checkpoint`` to ``out`` and write ``<out>.json``.

    Args:
        checkpoint: A ``model.safetensors``, model folder or Hub repo (as :func:`load_model`).
        out: The ``.onnx`` path (written atomically; its folder is created).
        opset: ONNX opset (default :data:`OPSET`, the one the parity tests run at).

    Raises:
        ReIDError: onnx is not installed, or the checkpoint cannot be loaded.
    """
    try:
        import onnx
    except ImportError as error:
        raise ReIDError("ONNX export needs onnx: pip install 'vlreid[export]'") from error
    weights = resolve_weights(checkpoint)
    model = load_model(weights)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    height, width = model.preprocessing.size
    example: tuple[torch.Tensor, ...] = (torch.zeros(2, 3, height, width),)
    names, axes = ["images"], {"images": {0: "batch"}, "features": {0: "batch"}}
    if model.uses_camids:
        example += (torch.zeros(2, dtype=torch.int64),)
        names.append("camids")
        axes["camids"] = {0: "batch"}
    temporary = out.with_name(f".{out.name}.tmp")
    # Gradients on: under no_grad, eval-mode nn.MultiheadAttention takes its fused fast path
    # (aten::_native_multi_head_attention), which has no ONNX symbolic.
    with warnings.catch_warnings(), torch.enable_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript-based exporter
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape checks in attention
        torch.onnx.export(
            ImageEncoder(model),
            example,
            str(temporary),
            input_names=names,
            output_names=["features"],
            dynamic_axes=axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,  # the dynamo exporter needs onnxscript; this one needs onnx only
        )
    onnx.checker.check_model(str(temporary))
    os.replace(temporary, out)
    sidecar = build_sidecar(model, weights, out.name)
    sidecar["opset"] = opset
    sidecar_path = out.with_name(f"{out.name}.json")
    sidecar_path.write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    logger.debug("wrote %s and %s", out, sidecar_path)
    return OnnxExport(out, sidecar_path, sidecar, model)
