"""vlreid: caption-guided, CLIP-based person re-identification (the ``reid`` command).

The package is split by concern, and imports go downward only (``tests/test_import_layering.py``
holds the allowed graph)::

    cli, demo, testing                      entry points (testing: tiny models for tests)
    captioning, training, export            features (training and export also use evaluation)
    evaluation                              metrics, re-ranking, pictures, feature extraction
    model, synthetic, datasets, templates   building blocks; model uses datasets.transforms
    config, typed_toml, attributes, errors  foundations

``vlreid.model`` is the inference model (what deployment imports); ``vlreid.datasets`` the
benchmark parsers, the :class:`~vlreid.datasets.manifest.Manifest` and the loaders;
``vlreid.synthetic`` the procedural pedestrian renderer; ``vlreid.captioning`` offline LLaVA /
attribute captioning into Parquet shards; ``vlreid.training`` the methods and the loop;
``vlreid.evaluation`` exact ReID metrics. Importing ``vlreid`` is cheap: heavy libraries are
imported by the submodules that need them.

Deployment in three lines (the checkpoint carries its preprocessing; no text encoder, no
transformers)::

    model = vlreid.load_model("runs/x/model.safetensors")
    features = model(["a.jpg", "b.jpg"])  # paths, PIL images, arrays, tensors -> (B, D)
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


def __dir__() -> list[str]:
    """The module's names, lazy exports included (so that ``dir(vlreid)`` shows load_model)."""
    return sorted({*__all__, *(name for name in globals() if name.startswith("__"))})
