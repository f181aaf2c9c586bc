"""Zero-shot ReID: a pretrained CLIP's image tower with no ReID training (``reid evaluate --clip``).

The first row of every CLIP-ReID table. The tower is adapted exactly as training adapts it
(:class:`vlreid.model.ReIDModel`: positional grid of the ReID crop, features = the L2-normalised
concatenation of the last-block CLS and the projected CLS), so the figure is the one epoch 0 of a
run that starts from these weights would report.
"""

from __future__ import annotations

from pathlib import Path

import open_clip
import torch

from vlreid.evaluation.feature_file import EvaluationInputs
from vlreid.evaluation.features import checkpoint_features
from vlreid.model import BackboneConfig, InferenceModel, build_reid_model
from vlreid.model.pretrained import clip_backbone, clip_preprocessing


def clip_reid_model(
    clip_model: open_clip.CLIP, backbone: BackboneConfig, source: str = "in memory"
) -> InferenceModel:
    """The ReID inference model of an in-memory CLIP (its vision weights, no classifier)."""
    model = build_reid_model(backbone, clip_model).eval()
    return InferenceModel(model, clip_preprocessing(backbone.image_size), {"reid.clip": source})


def pretrained_clip_model(
    model: str, untrained: bool = False, device: str | None = None, seed: int = 0
) -> InferenceModel:
    """The ReID inference model of ``--clip MODEL`` (:func:`vlreid.model.pretrained.clip_backbone`).

    Args:
        model: ``builtin:NAME``, an open_clip ``NAME:TAG`` or a local weights file.
        untrained: Build the same architecture randomly initialised (seeded) instead.
        device: Torch device (default CPU).
        seed: Seed of the random initialisation when ``untrained``.
    """
    clip_config, clip_model, pretrained, size = clip_backbone(model)
    backbone = BackboneConfig(
        clip_model=clip_model or "ViT-B-16",
        clip_config=clip_config,
        pretrained=None if untrained else pretrained,
        image_size=size,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        reid_model = build_reid_model(backbone).eval()
    source = f"{model} ({'random init' if untrained else 'pretrained'})"
    preprocessing = clip_preprocessing(size)
    return InferenceModel(reid_model.to(device or "cpu"), preprocessing, {"reid.clip": source})


def clip_inputs(
    model: str,
    dataset: str,
    root: str | Path,
    untrained: bool = False,
    device: str | None = None,
    batch_size: int = 128,
    num_workers: int = 2,
) -> EvaluationInputs:
    """``reid evaluate --clip``: query and gallery features of a pretrained CLIP's image tower."""
    inference_model = pretrained_clip_model(model, untrained, device)
    arrays = checkpoint_features(inference_model, dataset, root, batch_size, num_workers)
    return EvaluationInputs.from_arrays(arrays, source=inference_model.metadata["reid.clip"])
