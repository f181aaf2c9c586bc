"""The inference model's file format: ``model.safetensors`` and :func:`load_model`.

``model.safetensors`` holds the :class:`~vlreid.model.backbone.ReIDModel` only: image encoder,
SIE embedding and BNNecks (classifiers, text tower, prompts and heads are training-only). Its
metadata (str -> str, as safetensors requires) is enough to rebuild and use it:

=====================  ==========================================================
``reid.backbone``      :class:`ModelConfig` as JSON (``to_dict``, ``num_classes`` 0)
``reid.preprocessing`` :class:`~vlreid.datasets.transforms.Preprocessing` as JSON
``reid.config``        the resolved run config as JSON
``reid.version``       package version; ``reid.stage``, ``reid.epoch``: where it was saved
=====================  ==========================================================

:func:`load_model` rebuilds the model from that metadata and loads the weights strictly; it
imports torch, safetensors and open_clip only (no transformers, no caption or text code).
The file is written to a temporary name and moved into place with ``os.replace``, so an existing
file is always whole. Resume state (``state.pt``) is training's: :mod:`vlreid.training.checkpoint`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vlreid.datasets.transforms import Preprocessing, build_eval_transform
from vlreid.errors import DataFileError
from vlreid.model.backbone import ReIDModel
from vlreid.model.folder import WEIGHTS_NAME as WEIGHTS_FILE
from vlreid.model.folder import check_folder_config, resolve_weights
from vlreid.model.inputs import ImageInput, image_batch
from vlreid.model_config import ModelConfig

PROVENANCE_PREFIX = "reid.provenance"
CLASSIFIER_PREFIXES: tuple[str, ...] = ("classifier.", "classifier_projected.")


def inference_state(model: ReIDModel) -> dict[str, torch.Tensor]:
    """The model's state without the (training-only) classifiers, as contiguous CPU tensors."""
    return {
        key: value.detach().cpu().contiguous()
        for key, value in model.state_dict().items()
        if not key.startswith(CLASSIFIER_PREFIXES)
    }


def inference_backbone(config: ModelConfig) -> ModelConfig:
    """The architecture of the saved model: no classifiers, no pretrained weights to fetch."""
    return dataclasses.replace(config, num_classes=0, pretrained=None)


def save_inference_weights(
    path: str | Path,
    model: ReIDModel,
    preprocessing: Preprocessing,
    run_config: str = "{}",
    extra: dict[str, str] | None = None,
) -> None:
    """Write ``model.safetensors`` atomically (see the module docstring for the metadata).

    Args:
        path: Output file.
        model: The trained model.
        preprocessing: How its inputs are resized and normalised.
        run_config: The resolved run config as JSON.
        extra: More metadata (``reid.stage``, ``reid.epoch``...).
    """
    from safetensors.torch import save_file

    from vlreid import __version__

    metadata = {
        "format": "pt",
        "reid.backbone": json.dumps(inference_backbone(model.config).to_dict()),
        "reid.preprocessing": json.dumps(preprocessing.to_dict()),
        "reid.config": run_config,
        "reid.version": __version__,
        **(extra or {}),
    }
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    save_file(inference_state(model), str(temporary), metadata=metadata)
    os.replace(temporary, path)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a ``model.safetensors``.

    Raises:
        DataFileError: Missing or unreadable file, or not a reid checkpoint.
    """
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"no checkpoint at {path}: expected a model.safetensors file")
    if path.suffix in (".pt", ".pth", ".ckpt", ".bin"):
        what = "the resume state of reid train" if path.name == "state.pt" else "a PyTorch file"
        raise DataFileError(
            f"{path} is {what}, not inference weights: pass the {WEIGHTS_FILE} beside it "
            f"({path.with_name(WEIGHTS_FILE)})"
        )
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
    except Exception as error:  # safetensors raises its own error types
        raise DataFileError(f"cannot read checkpoint {path}: {error}") from error
    missing = {"reid.backbone", "reid.preprocessing"} - set(metadata)
    if missing:
        raise DataFileError(
            f"{path} is not a reid checkpoint: its metadata lacks {sorted(missing)}"
        )
    return metadata


class InferenceModel(nn.Module):
    """A trained ReID model with its preprocessing: ``model(images) -> (B, D)`` features.

    ``images`` is a path, a PIL image, a ``uint8`` NumPy array ``(H, W, 3)``, a ``uint8`` tensor
    ``(3, H, W)``, a float tensor ``(3, H, W)`` in [0, 1], a list of any of those, or a float
    tensor ``(B, 3, H, W)`` already at the model's size and normalised (the fast path, used as
    is); every other input gets the model's own preprocessing (:mod:`vlreid.model.inputs` says
    exactly how each kind is read). Features are L2-normalised; gradients are not tracked.

    Args:
        model: The ReID model (eval mode).
        preprocessing: Its input size and normalisation.
        metadata: The checkpoint's metadata.
    """

    def __init__(
        self, model: ReIDModel, preprocessing: Preprocessing, metadata: dict[str, str]
    ) -> None:
        super().__init__()
        self.model = model.eval()
        self.preprocessing = preprocessing
        self.transform = build_eval_transform(preprocessing)
        self.metadata = metadata

    @property
    def device(self) -> torch.device:
        """Where the weights are."""
        return next(self.model.parameters()).device

    @property
    def uses_camids(self) -> bool:
        """Whether the model has a camera embedding (SIE) that camids feed."""
        return self.model.sie_embedding is not None

    @property
    def feature_dim(self) -> int:
        """D, the size of a feature."""
        return self.model.feature_dim

    def preprocess(self, images: ImageInput | Sequence[ImageInput]) -> torch.Tensor:
        """Any accepted input -> ``(B, 3, H, W)`` normalised tensor on the model's device."""
        return image_batch(images, self.transform).to(self.device)

    @torch.no_grad()
    def forward(
        self,
        images: ImageInput | Sequence[ImageInput],
        camids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Features ``(B, D)`` of ``images``; ``camids`` ``(B,)`` matter only with SIE."""
        return self.model(self.preprocess(images), camids)


def load_model(path: str | Path, device: torch.device | str = "cpu") -> InferenceModel:
    """Load a model for inference (strictly: every weight, nothing else).

    Args:
        path: A ``model.safetensors``, a model folder holding one (``reid export --format
            folder``), or a Hugging Face Hub repo ``owner/name[@revision]`` of that layout
            (downloaded with ``huggingface_hub``; ``HF_HUB_OFFLINE=1`` uses the cache only).
        device: Where to put the weights.

    Raises:
        DataFileError: Missing file, folder or repo, missing metadata, a ``config.json`` that
            disagrees with the weights, or weights that do not match the architecture in the
            metadata.
    """
    from safetensors.torch import load_file

    path = resolve_weights(path)
    metadata = read_metadata(path)
    if path.name == WEIGHTS_FILE:
        check_folder_config(path.parent, metadata)
    try:
        backbone = ModelConfig.from_dict(json.loads(metadata["reid.backbone"]))
        preprocessing = Preprocessing.from_dict(json.loads(metadata["reid.preprocessing"]))
    except (ValueError, TypeError) as error:
        raise DataFileError(f"bad metadata in checkpoint {path}: {error}") from error
    model = ReIDModel(inference_backbone(backbone))
    try:
        model.load_state_dict(load_file(str(path)), strict=True)
    except RuntimeError as error:
        raise DataFileError(f"weights of {path} do not match its architecture: {error}") from error
    return InferenceModel(model.to(device), preprocessing, metadata)


def recorded_run_config(
    metadata: dict[str, str], path: str | Path = "checkpoint"
) -> dict[str, Any]:
    """The run config that checkpoint metadata records (``reid.config``: ``RunConfig.to_dict``);
    empty for a checkpoint saved without one.

    Raises:
        DataFileError: ``reid.config`` is not a JSON object (``path`` names the file).
    """
    try:
        config = json.loads(metadata.get("reid.config") or "{}")
    except ValueError as error:
        raise DataFileError(f"{path}: metadata reid.config is not JSON: {error}") from error
    if not isinstance(config, dict):
        raise DataFileError(f"{path}: metadata reid.config is not a JSON object: {config!r}")
    return config


def checkpoint_provenance(metadata: dict[str, str]) -> dict[str, object]:
    """The ``reid.provenance.*`` fields of checkpoint metadata (each stored as JSON), decoded:
    ``digest``, ``git_commit``, ``source_sha256``, ...; empty for a checkpoint without them.

    Raises:
        DataFileError: A field that is not JSON.
    """
    fields: dict[str, object] = {}
    for key, value in sorted(metadata.items()):
        if key.startswith(f"{PROVENANCE_PREFIX}."):
            try:
                fields[key[len(PROVENANCE_PREFIX) + 1 :]] = json.loads(value)
            except ValueError as error:
                raise DataFileError(f"checkpoint metadata {key} is not JSON: {value!r}") from error
    return fields
