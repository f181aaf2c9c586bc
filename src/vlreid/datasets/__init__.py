"""Benchmark parsers and the registry that names them.

:data:`PARSERS` maps each dataset name to its parser; :func:`load_manifest` is the one entry
point: it checks the name and the options, then returns a :class:`Manifest`: the rows of
DESIGN 3.1 (``manifest.frame``) and the resolved dataset folder they are relative to
(``manifest.root``).

The procedural dataset is written by :mod:`vlreid.synthetic`; the ``synthetic`` parser reads it
with the Market-1501 rules and never imports the renderer.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from vlreid.datasets.cuhk03 import parse_cuhk03
from vlreid.datasets.dukemtmc import parse_dukemtmc
from vlreid.datasets.manifest import Manifest
from vlreid.datasets.market1501 import parse_market1501, parse_synthetic
from vlreid.datasets.msmt17 import parse_msmt17
from vlreid.datasets.occluded_duke import parse_occluded_duke
from vlreid.datasets.vehicleid import parse_vehicleid
from vlreid.datasets.veri776 import parse_veri776
from vlreid.errors import ReIDError

PARSERS: dict[str, Callable[..., Manifest]] = {
    "market1501": parse_market1501,
    "msmt17": parse_msmt17,
    "dukemtmc": parse_dukemtmc,
    "occluded_duke": parse_occluded_duke,
    "cuhk03": parse_cuhk03,
    "veri776": parse_veri776,
    "vehicleid": parse_vehicleid,
    "synthetic": parse_synthetic,
}
"""Dataset name -> parser ``(root, **options) -> manifest``."""


def dataset_options(dataset: str) -> dict[str, object]:
    """The options a dataset's parser accepts, with their defaults.

    Raises:
        ReIDError: Unknown dataset name (the message lists the valid names).
    """
    if dataset not in PARSERS:
        raise ReIDError(f"unknown dataset {dataset!r}; valid: {', '.join(PARSERS)}")
    parameters = inspect.signature(PARSERS[dataset]).parameters
    return {name: p.default for name, p in parameters.items() if name != "root"}


def load_manifest(dataset: str, root: str | Path, **options: object) -> Manifest:
    """Parse a benchmark folder into its manifest.

    Args:
        dataset: One of :data:`PARSERS` (``market1501``, ``msmt17``, ``dukemtmc``,
            ``occluded_duke``, ``cuhk03``, ``veri776``, ``vehicleid``, ``synthetic``).
        root: The dataset folder, or a parent holding it under its archive name.
        **options: Parser options: ``train_val`` (msmt17), ``variant`` (cuhk03),
            ``test_size`` and ``seed`` (vehicleid).

    Returns:
        The manifest rows (``frame``) and the resolved dataset folder (``root``).

    Raises:
        ReIDError: Unknown dataset or option (the message lists the valid ones); the parsers
            raise :class:`~vlreid.errors.DatasetLayoutError` and
            :class:`~vlreid.errors.DataFileError`.
    """
    accepted = dataset_options(dataset)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        valid = ", ".join(accepted) or "none"
        raise ReIDError(
            f"unknown option(s) {', '.join(unknown)} for dataset {dataset}; valid: {valid}"
        )
    return PARSERS[dataset](root, **options)


__all__ = ["PARSERS", "Manifest", "dataset_options", "load_manifest"]
