"""Training and evaluation data loaders, as the trainer builds them.

``build_train_loader`` = the train rows of a manifest -> :class:`BimodalDataset` with the training
transform -> :class:`IdentitySampler` (P x K) -> :class:`torch.utils.data.DataLoader`. Call
:func:`set_epoch` before each epoch: it selects the sampler's order and reseeds the augmentation
of the main process and of the workers from ``(seed, rank, epoch[, worker])``, so an epoch is
reproducible for a given seed and number of workers, also after a resume. The loader also works
after ``accelerate``'s ``prepare`` (whose ``set_epoch`` reaches the same sampler and dataset).

Data parallel training, two equivalent ways: build the loader with
``num_replicas=world_size, rank=rank`` and move batches to the device yourself (do not
``prepare`` it, or it is sharded twice); or build it with ``num_replicas=1`` and let
``accelerator.prepare`` deal whole batches to the ranks. The first also gives each rank its own
augmentation stream (the rank is mixed into the seed).

Workers are not persistent (each epoch forks them again, so they pick up the epoch's seeds); with
``cache="memory"`` forked workers share the packed array copy-on-write (Linux ``fork``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, get_worker_info

from vlreid.datasets.bimodal import BimodalDataset, collate_batch, mix_seed
from vlreid.datasets.samplers import IdentitySampler
from vlreid.datasets.transforms import Preprocessing, build_eval_transform, build_train_transform
from vlreid.errors import ReIDError

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class LoaderConfig:
    """Data-loading options.

    Attributes:
        batch_size: Training images per batch, P x K.
        num_instances: K, images per identity in a training batch.
        num_workers: Data-loader worker processes (0 loads in the main process).
        preprocessing: Size and normalisation of the backbone.
        cache: ``None`` or ``"memory"`` (decode and resize every image once; see
            :mod:`vlreid.datasets.cache`).
        seed: Seed of the sampler and of the augmentation.
        missing_captions: ``"error"`` or ``"fallback"`` for images without a usable caption.
        eval_batch_size: Images per evaluation batch.
        pin_memory: Pin batches in page-locked memory (faster host-to-GPU copies).
        augmentation: Keyword arguments of the training transform
            (:class:`~vlreid.datasets.transforms.TrainTransform`: ``padding``,
            ``erasing_probability``...); empty keeps its defaults (those of 256x128 crops).
    """

    batch_size: int = 64
    num_instances: int = 4
    num_workers: int = 4
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    cache: str | None = None
    seed: int = 0
    missing_captions: str = "error"
    eval_batch_size: int = 128
    pin_memory: bool = False
    augmentation: Mapping[str, Any] = field(default_factory=dict)


def _seed_worker(worker_id: int) -> None:
    """Worker init: seed the dataset's augmentation generator, ``random`` and NumPy."""
    info = get_worker_info()
    if info is None:
        return
    # From the epoch's seed, which the forked dataset copy carries, not from the loader's
    # generator: a wrapped loader (e.g. accelerate's) keeps the same worker seeds.
    seed = mix_seed(info.dataset.epoch_seed, worker_id)
    info.dataset.reseed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def build_train_loader(
    manifest: pd.DataFrame,
    root: Path | str,
    config: LoaderConfig,
    captions_dir: Path | str | None = None,
    num_replicas: int = 1,
    rank: int = 0,
) -> DataLoader:
    """The P x K training loader over the ``train`` rows of a manifest.

    Args:
        manifest: Manifest of DESIGN 3.1 (other splits are ignored).
        root: Dataset root the ``relpath`` column is relative to.
        config: Batch, sampler, worker, preprocessing and cache options.
        captions_dir: Caption shard folder; batches then carry ``captions``.
        num_replicas: Data-parallel ranks (each gets disjoint whole batches).
        rank: This process's rank.

    Returns:
        A loader of :class:`vlreid.datasets.bimodal.ReIDBatch`; ``len(loader)`` batches per epoch.

    Raises:
        ReIDError: No train rows, bad P x K options, missing captions, unreadable images (cache).
    """
    train = manifest[manifest["split"] == "train"].reset_index(drop=True)
    if train.empty:
        raise ReIDError(f"the manifest under {root} has no train rows to load")
    dataset = BimodalDataset(
        train,
        root,
        build_train_transform(config.preprocessing, **config.augmentation),
        captions_dir=captions_dir,
        missing_captions=config.missing_captions,
        cache=config.cache,
        seed=mix_seed(config.seed, rank),  # ranks augment differently
    )
    sampler = IdentitySampler(
        dataset.labels,
        config.batch_size,
        config.num_instances,
        seed=config.seed,
        num_replicas=num_replicas,
        rank=rank,
    )
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=config.num_workers,
        collate_fn=collate_batch,
        worker_init_fn=_seed_worker,
        # Its own generator, so that the base seed it draws does not consume the global RNG.
        generator=torch.Generator().manual_seed(config.seed),
        pin_memory=config.pin_memory,
    )
    return loader


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Select the epoch of a training loader: sampler order and augmentation seeds.

    Call it before iterating each epoch (also after resuming at ``epoch``). A loader prepared by
    ``accelerate`` has its own ``set_epoch`` (which reaches the sampler and the dataset, and which
    it would otherwise call with its own epoch counter at each ``iter``): it is used instead.
    """
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(epoch)
        return
    if not isinstance(loader.sampler, IdentitySampler) or not isinstance(
        loader.dataset, BimodalDataset
    ):
        raise TypeError("set_epoch expects a loader built by build_train_loader")
    loader.sampler.set_epoch(epoch)
    loader.dataset.set_epoch(epoch)


def build_eval_loader(
    manifest: pd.DataFrame,
    root: Path | str,
    config: LoaderConfig,
    captions_dir: Path | str | None = None,
) -> DataLoader:
    """A sequential loader over every row of ``manifest`` with the evaluation transform.

    Select the rows first (e.g. ``manifest[manifest.split != "train"]`` for query + gallery);
    batches keep manifest order.
    """
    if manifest.empty:
        raise ReIDError(f"no images to evaluate under {root}")
    dataset = BimodalDataset(
        manifest.reset_index(drop=True),
        root,
        build_eval_transform(config.preprocessing),
        captions_dir=captions_dir,
        missing_captions=config.missing_captions,
        cache=config.cache,
        seed=config.seed,
    )
    return DataLoader(
        dataset,
        batch_size=config.eval_batch_size,
        shuffle=False,
        num_workers=config.num_workers,
        collate_fn=collate_batch,
        pin_memory=config.pin_memory,
        # Its own generator: iterating draws a base seed, which must not come from the global
        # RNG, or an evaluation in the middle of training would change the training that follows.
        generator=torch.Generator().manual_seed(config.seed),
    )
