"""Where a CLIP's pretrained weights come from: ``model.pretrained`` and ``reid evaluate --clip``.

``model.pretrained`` (and :attr:`BackboneConfig.pretrained`) takes:

- ``"builtin:tiny-clip-synthetic"``: the tiny CLIP shipped in ``vlreid/assets/`` (an open_clip
  ``CLIP`` with a 4-block ViT at 64x32 and a 4-block text tower with the CLIP BPE vocabulary,
  pretrained by ``scripts/train_tiny_clip.py`` on procedural pedestrians and sentences about
  their attributes). Its architecture is ``open_clip_config.json`` next to the weights
  (:func:`builtin_clip_config`); a run that loads it must use that ``clip_config``.
- an open_clip pretrained tag such as ``"openai"`` (with ``clip_model``), or a local weights file
  (``.safetensors`` or a ``torch.save`` state dict) loaded with ``open_clip.load_checkpoint``;
- ``"none"`` (or no value): the same architecture, randomly initialised.

``reid evaluate --clip MODEL`` names a whole model: ``builtin:NAME``, ``NAME:TAG`` for open_clip
(``ViT-B-16:openai``) or a local weights file with an ``open_clip_config.json`` beside it
(:func:`clip_backbone`).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import open_clip

from vlreid.datasets.transforms import Preprocessing
from vlreid.errors import ReIDError

BUILTIN_PREFIX = "builtin:"
BUILTIN_CLIPS: dict[str, str] = {"tiny-clip-synthetic": "tiny-clip-synthetic"}
"""Built-in CLIP name -> its folder under ``vlreid/assets``."""
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "open_clip_config.json"
NO_WEIGHTS = ("", "none")
"""``pretrained`` values that mean random initialisation."""


def builtin_clip_folder(name: str) -> Path:
    """The packaged folder of ``builtin:NAME`` (``model.safetensors`` + ``open_clip_config.json``).

    Raises:
        ReIDError: Unknown name (the message lists the built-in ones), or missing files.
    """
    key = name.removeprefix(BUILTIN_PREFIX)
    if key not in BUILTIN_CLIPS:
        known = ", ".join(BUILTIN_PREFIX + k for k in sorted(BUILTIN_CLIPS))
        raise ReIDError(f"unknown built-in CLIP {name!r}: expected one of {known}")
    folder = Path(str(resources.files("vlreid").joinpath("assets", BUILTIN_CLIPS[key])))
    missing = [f for f in (WEIGHTS_NAME, CONFIG_NAME) if not (folder / f).is_file()]
    if missing:
        raise ReIDError(
            f"built-in CLIP {name!r} is missing {missing} under {folder} (reinstall the "
            "package, or retrain it with scripts/train_tiny_clip.py)"
        )
    return folder


def builtin_clip_config(name: str = "builtin:tiny-clip-synthetic") -> dict[str, Any]:
    """The open_clip model config of a built-in CLIP (``open_clip.CLIP(**config)`` builds it)."""
    return json.loads((builtin_clip_folder(name) / CONFIG_NAME).read_text())


def resolve_pretrained(pretrained: str | None) -> str | None:
    """``None``/``"none"`` -> None; ``builtin:NAME`` -> its weights file; anything else as is."""
    if pretrained is None or pretrained.strip().lower() in NO_WEIGHTS:
        return None
    if pretrained.startswith(BUILTIN_PREFIX):
        return str(builtin_clip_folder(pretrained) / WEIGHTS_NAME)
    return pretrained


def clip_backbone(model: str) -> tuple[dict[str, Any] | None, str, str, tuple[int, int]]:
    """What ``reid evaluate --clip MODEL`` builds: (clip_config, clip_model, pretrained, size).

    Args:
        model: ``builtin:NAME``; an open_clip ``NAME:TAG`` (``ViT-B-16:openai``, at 256x128);
            or a local weights file with ``open_clip_config.json`` in its folder.

    Raises:
        ReIDError: An unknown built-in, an open_clip name or tag it does not know, or a local
            file without its config.
    """
    if model.startswith(BUILTIN_PREFIX):
        config = builtin_clip_config(model)
        return config, "", model, _config_size(config)
    path = Path(model)
    if path.is_file():
        config_path = path.parent / CONFIG_NAME
        if not config_path.is_file():
            raise ReIDError(
                f"--clip {model}: expected the open_clip model config at {config_path} "
                "(a JSON with embed_dim, vision_cfg, text_cfg)"
            )
        config = json.loads(config_path.read_text())
        return config, "", str(path), _config_size(config)
    name, _, tag = model.partition(":")
    if not tag or name not in open_clip.list_models():
        raise ReIDError(
            f"--clip {model!r}: expected builtin:tiny-clip-synthetic, an open_clip NAME:TAG "
            "such as ViT-B-16:openai, or an existing weights file"
        )
    return None, name, tag, (256, 128)


def clip_preprocessing(size: tuple[int, int]) -> Preprocessing:
    """CLIP's normalisation at the ReID input ``(height, width)``."""
    return Preprocessing.clip(size)


def _config_size(config: dict[str, Any]) -> tuple[int, int]:
    size = config["vision_cfg"].get("image_size", 224)
    return (int(size[0]), int(size[1])) if isinstance(size, list) else (int(size), int(size))
