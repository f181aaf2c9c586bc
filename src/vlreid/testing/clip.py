"""A tiny, randomly initialised CLIP for tests and CPU demos.

The model is a real :class:`open_clip.CLIP` built from open_clip's vision and text configs, only
narrow and shallow. It keeps what the ReID code relies on: the real CLIP BPE vocabulary
(49,408 tokens, shipped inside open_clip, so ``open_clip.tokenize`` works offline), a context of 77
tokens, argmax (end-of-text) pooling, QuickGELU as in OpenAI's weights, and an image size that
matches a small ReID crop (height x width, e.g. 64 x 32). Nothing is downloaded.

Example::

    config = tiny_clip_config()                       # a plain dict, JSON-serialisable
    clip_model = build_tiny_clip(seed=0)              # open_clip.CLIP, about 2M parameters
    model_config = ModelConfig(clip_config=config, image_size=(64, 32), num_classes=10)
"""

from __future__ import annotations

from typing import Any

import open_clip
import torch

CONTEXT_LENGTH = 77
VOCAB_SIZE = 49408  # the size of open_clip's bundled CLIP BPE vocabulary


def tiny_clip_config(
    *,
    embed_dim: int = 32,
    vision_width: int = 64,
    vision_layers: int | tuple[int, int, int, int] = 2,
    vision_head_width: int = 32,
    patch_size: int = 8,
    image_size: tuple[int, int] = (64, 32),
    text_width: int = 32,
    text_layers: int = 2,
    text_heads: int = 2,
) -> dict[str, Any]:
    """An open_clip model config: ``embed_dim``, ``vision_cfg``, ``text_cfg``, ``quick_gelu``.

    Args:
        embed_dim: Joint image-text embedding size.
        vision_width: ViT width; for a ModifiedResNet (``vision_layers`` a 4-tuple), its stem width
            (the final feature map then has ``32 * vision_width`` channels).
        vision_layers: Number of ViT blocks, or the 4 ResNet stage depths for a ModifiedResNet.
        vision_head_width: Width of one attention head (heads = width // head_width for a ViT,
            ``32 * width // head_width`` for the ResNet attention pool).
        patch_size: ViT patch size (ignored for a ResNet).
        image_size: ``(height, width)`` the model is built for (a ResNet is built square, at
            the larger side; the ReID backbone resizes its attention-pool embedding anyway).
        text_width: Text transformer width (also the token-embedding size).
        text_layers: Number of text transformer blocks.
        text_heads: Number of text attention heads.

    Returns:
        A JSON-serialisable dict accepted by ``open_clip.CLIP(**config)`` and by
        :class:`vlreid.model_config.ModelConfig` as ``clip_config``.
    """
    is_resnet = isinstance(vision_layers, (tuple, list))
    layers: int | list[int] = list(vision_layers) if is_resnet else vision_layers
    # open_clip's ModifiedResNet is built square (its attention pool assumes a square grid)
    built_size: int | list[int] = max(image_size) if is_resnet else list(image_size)
    return {
        "embed_dim": embed_dim,
        "quick_gelu": True,
        "vision_cfg": {
            "image_size": built_size,
            "layers": layers,
            "width": vision_width,
            "head_width": vision_head_width,
            "patch_size": patch_size,
        },
        "text_cfg": {
            "context_length": CONTEXT_LENGTH,
            "vocab_size": VOCAB_SIZE,
            "width": text_width,
            "heads": text_heads,
            "layers": text_layers,
        },
    }


def build_tiny_clip(seed: int | None = 0, **config_options: Any) -> open_clip.CLIP:
    """Build a randomly initialised tiny :class:`open_clip.CLIP`.

    Args:
        seed: Seed of the random initialisation (a private generator state: the global RNG is
            restored afterwards); ``None`` uses the global RNG as is.
        **config_options: Keyword arguments of :func:`tiny_clip_config`.

    Returns:
        The model in eval mode, float32, on CPU.
    """
    config = tiny_clip_config(**config_options)
    if seed is None:
        model = open_clip.CLIP(**config)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = open_clip.CLIP(**config)
    return model.eval()
