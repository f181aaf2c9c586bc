"""Captioning models shipped inside the package, selected as ``--model builtin:NAME``.

A built-in model is a folder written by ``save_pretrained`` under ``reid/assets/``; it loads
through the same ``AutoProcessor`` / ``AutoModelForImageTextToText`` path as a hub checkpoint.

- ``builtin:tiny-llava-synthetic``: a 0.76M-parameter (3 MB) LLaVA (CLIP vision tower, Llama)
  trained by ``scripts/train_tiny_llava.py`` to answer the person template about the procedural
  pedestrians of ``reid data synth`` (it knows nothing about real photographs). Its
  ``training.json`` records the command, the seed and the held-out field accuracy.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from vlreid.errors import ReIDError

BUILTIN_PREFIX = "builtin:"
"""Model names starting with this prefix name a model shipped inside the package."""

BUILTIN_MODELS: dict[str, str] = {"tiny-llava-synthetic": "tiny-llava-synthetic"}
"""Built-in model name -> its folder under ``reid/assets``."""


def is_builtin(model: str) -> bool:
    """Whether ``model`` names a built-in model (``builtin:NAME``)."""
    return model.startswith(BUILTIN_PREFIX)


def builtin_model_path(model: str) -> Path:
    """The packaged folder of a built-in model.

    Args:
        model: ``builtin:NAME`` with NAME a key of :data:`BUILTIN_MODELS`.

    Returns:
        The folder, loadable with ``from_pretrained``.

    Raises:
        ReIDError: Unknown name (the message lists the built-in ones), or a package installed
            without its model files.
    """
    name = model.removeprefix(BUILTIN_PREFIX)
    if name not in BUILTIN_MODELS:
        known = ", ".join(BUILTIN_PREFIX + key for key in sorted(BUILTIN_MODELS))
        raise ReIDError(f"unknown built-in model {model!r}: expected one of {known}")
    folder = Path(str(resources.files("vlreid").joinpath("assets", BUILTIN_MODELS[name])))
    if not (folder / "config.json").is_file():
        raise ReIDError(
            f"built-in model {model!r} is missing from this installation: expected a "
            f"save_pretrained folder at {folder} (reinstall the package, or retrain it with "
            "scripts/train_tiny_llava.py)"
        )
    return folder


def resolve_model(model: str) -> str:
    """``builtin:NAME`` -> the packaged folder; any other hub id or path is returned unchanged."""
    return str(builtin_model_path(model)) if is_builtin(model) else model
