"""The inference model: CLIP's image tower adapted to ReID, its file format and :func:`load_model`.

This is the only code that evaluation, feature extraction and deployment import: it depends on
torch, open_clip, safetensors and :mod:`vlreid.datasets.transforms` (the preprocessing), never on
training, captioning, transformers or the synthetic renderer.

- :mod:`vlreid.model.backbone`: :class:`ReIDModel`, built from a
  :class:`~vlreid.model_config.ModelConfig` (``BackboneConfig`` is its former name).
- :mod:`vlreid.model.vision`: the changes to open_clip's towers (stride, positional grids).
- :mod:`vlreid.model.weights`: ``model.safetensors`` (weights + metadata) and
  :class:`InferenceModel`.
- :mod:`vlreid.model.pretrained`: where CLIP weights come from (``builtin:tiny-clip-synthetic``,
  an open_clip tag, a local file, ``none``).
- :mod:`vlreid.model.folder`: model folders (``config.json`` + weights + card) and Hub repos,
  which :func:`load_model` also loads.
"""

from __future__ import annotations

from vlreid.model.backbone import BackboneConfig, ReIDModel, build_clip, build_reid_model
from vlreid.model.weights import (
    WEIGHTS_FILE,
    InferenceModel,
    load_model,
    read_metadata,
    save_inference_weights,
)
from vlreid.model_config import ModelConfig

__all__ = [
    "WEIGHTS_FILE",
    "BackboneConfig",
    "InferenceModel",
    "ModelConfig",
    "ReIDModel",
    "build_clip",
    "build_reid_model",
    "load_model",
    "read_metadata",
    "save_inference_weights",
]
