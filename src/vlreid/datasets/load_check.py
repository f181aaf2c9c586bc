"""``reid data load``: iterate the training loader over a benchmark and report its throughput.

It checks that every training image (and caption, when a shard folder is given) loads through
the data path the trainer uses (:func:`~vlreid.datasets.loaders.build_train_loader` and
:func:`~vlreid.datasets.loaders.set_epoch`), and prints the images per second it measured. The
same measurement drives ``benchmarks/data_loading.py``, which prints it next to bare JPEG
decoding of the same files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from vlreid.config import DataConfig
from vlreid.datasets.loaders import build_train_loader, set_epoch
from vlreid.preprocessing import Preprocessing

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class LoaderThroughput:
    """What :func:`run_train_epochs` measured.

    Attributes:
        setup_seconds: Building the loader (manifest filtering, caption join, cache).
        epoch_seconds: Wall time of each epoch.
        images: Images loaded over all epochs.
        batches: Batches loaded over all epochs.
    """

    setup_seconds: float
    epoch_seconds: tuple[float, ...]
    images: int
    batches: int

    @property
    def images_per_second(self) -> float:
        """Images per second over all epochs (setup excluded)."""
        return self.images / max(sum(self.epoch_seconds), 1e-9)


def run_train_epochs(
    manifest: pd.DataFrame,
    root: Path | str,
    data: DataConfig,
    preprocessing: Preprocessing,
    seed: int,
    epochs: int = 1,
    progress: bool = True,
) -> LoaderThroughput:
    """Build the training loader and iterate it for ``epochs`` epochs, discarding the batches.

    This is ``reid data load``: it checks that every training image and caption loads, and
    measures the loader's speed.

    Args:
        manifest: Manifest of DESIGN 3.1.
        root: Dataset root.
        data: Loader options (and ``captions``), as :func:`build_train_loader` reads them.
        preprocessing: Size and normalisation.
        seed: Seed of the sampler and of the augmentation.
        epochs: Number of epochs.
        progress: Draw a rich progress bar.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    start = time.perf_counter()
    loader = build_train_loader(manifest, root, data, preprocessing, seed)
    setup_seconds = time.perf_counter() - start
    epoch_seconds: list[float] = []
    images = batches = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeRemainingColumn(), disable=not progress) as bar:
        for epoch in range(epochs):
            set_epoch(loader, epoch)
            task = bar.add_task(f"epoch {epoch + 1}/{epochs}", total=len(loader))
            start = time.perf_counter()
            for batch in loader:
                images += len(batch["images"])
                batches += 1
                bar.advance(task)
            epoch_seconds.append(time.perf_counter() - start)
    return LoaderThroughput(setup_seconds, tuple(epoch_seconds), images, batches)


def load_and_run_train_epochs(
    data: DataConfig,
    preprocessing: Preprocessing,
    seed: int,
    epochs: int = 1,
    progress: bool = True,
) -> LoaderThroughput:
    """``reid data load``: parse ``data.dataset`` in ``data.root``, then :func:`run_train_epochs`.

    The folder is parsed by :func:`vlreid.datasets.load_manifest` (with ``data.options``, e.g.
    ``{"train_val": True}`` for MSMT17), and images are read from the dataset folder it resolved
    (``manifest.root``, which may be below ``data.root``); the other arguments are those of
    :func:`run_train_epochs`.
    """
    from vlreid.datasets import load_manifest

    manifest = load_manifest(data.dataset, data.root, **dict(data.options))
    return run_train_epochs(
        manifest.frame, manifest.root, data, preprocessing, seed, epochs, progress
    )
