"""reid: caption-guided, CLIP-based person re-identification.

The package is split by concern: ``vlreid.datasets`` (benchmark parsers, synthetic data, loaders),
``vlreid.captioning`` (offline LLaVA / attribute captioning into Parquet shards),
``vlreid.training`` (CLIP adapted to ReID and the training methods) and ``vlreid.evaluation``
(exact ReID metrics, re-ranking, pictures). Importing ``reid`` is cheap: heavy libraries are
imported by the submodules that need them.

Deployment in three lines (the checkpoint carries its preprocessing; no text encoder, no
transformers)::

    model = vlreid.load_model("runs/x/model.safetensors")
    features = model(pil_images)          # or a preprocessed (B, 3, H, W) tensor -> (B, D)
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("vlreid")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__", "load_model"]


def __getattr__(name: str) -> Any:
    """Lazy exports: ``vlreid.load_model`` imports torch only when first used."""
    if name == "load_model":
        from vlreid.model import load_model

        return load_model
    raise AttributeError(f"module 'vlreid' has no attribute {name!r}")
