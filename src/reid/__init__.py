"""reid: caption-guided, CLIP-based person re-identification.

The package is split by concern: ``reid.datasets`` (benchmark parsers, synthetic data, loaders),
``reid.captioning`` (offline LLaVA / attribute captioning into Parquet shards),
``reid.training`` (CLIP adapted to ReID and the training methods) and ``reid.evaluation``
(exact ReID metrics, re-ranking, pictures). Importing ``reid`` is cheap: heavy libraries are
imported by the submodules that need them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("reid")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
