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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, get_worker_info

from vlreid.config import DataConfig
from vlreid.datasets.bimodal import BimodalDataset, collate_batch, mix_seed
from vlreid.datasets.samplers import IdentitySampler
from vlreid.datasets.transforms import build_eval_transform, build_train_transform
from vlreid.errors import ReIDError
from vlreid.preprocessing import Preprocessing

if TYPE_CHECKING:
    import pandas as pd


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
    data: DataConfig,
    preprocessing: Preprocessing,
    seed: int,
    num_replicas: int = 1,
    rank: int = 0,
    pin_memory: bool = False,
    view_augmentation: Mapping[str, Any] | None = None,
) -> DataLoader:
    """The P x K training loader over the ``train`` rows of a manifest.

    Args:
        manifest: Manifest of DESIGN 3.1 (other splits are ignored).
        root: Dataset root the ``relpath`` column is relative to.
        data: Batch (``batch_size``, ``num_instances``), worker, cache, augmentation and caption
            options (``captions``: the shard folder; batches then carry ``captions``). Its
            ``dataset``, ``root`` and ``options`` are not read.
        preprocessing: Size and normalisation of the backbone.
        seed: Seed of the sampler and of the augmentation.
        num_replicas: Data-parallel ranks (each gets disjoint whole batches).
        rank: This process's rank.
        pin_memory: Pin batches in page-locked memory (faster host-to-GPU copies).
        view_augmentation: When given, batches also carry ``views``: two more draws of the
            training transform from each decoded image, with these options overriding
            ``data.augmentation`` (a method's ``view_augmentation(stage)``).

    Returns:
        A loader of :class:`vlreid.datasets.bimodal.ReIDBatch`; ``len(loader)`` batches per epoch.

    Raises:
        ReIDError: No train rows, bad P x K options, missing captions, unreadable images (cache).
    """
    train = manifest[manifest["split"] == "train"].reset_index(drop=True)
    if train.empty:
        raise ReIDError(f"the manifest under {root} has no train rows to load")
    view_transform = None
    if view_augmentation is not None:
        options = {**data.augmentation, **view_augmentation}
        view_transform = build_train_transform(preprocessing, **options)
    dataset = BimodalDataset(
        train,
        root,
        build_train_transform(preprocessing, **data.augmentation),
        captions_dir=Path(data.captions) if data.captions else None,
        missing_captions=data.missing_captions,
        cache=data.cache,
        seed=mix_seed(seed, rank),  # ranks augment differently
        view_transform=view_transform,
    )
    sampler = IdentitySampler(
        dataset.labels,
        data.batch_size,
        data.num_instances,
        seed=seed,
        num_replicas=num_replicas,
        rank=rank,
    )
    loader = DataLoader(
        dataset,
        batch_size=data.batch_size,
        sampler=sampler,
        drop_last=True,
        num_workers=data.num_workers,
        collate_fn=collate_batch,
        worker_init_fn=_seed_worker,
        # Its own generator, so that the base seed it draws does not consume the global RNG.
        generator=torch.Generator().manual_seed(seed),
        pin_memory=pin_memory,
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
    data: DataConfig,
    preprocessing: Preprocessing,
    seed: int,
    pin_memory: bool = False,
) -> DataLoader:
    """A sequential loader over every row of ``manifest`` with the evaluation transform.

    Select the rows first (e.g. ``manifest[manifest.split != "train"]`` for query + gallery);
    batches keep manifest order and carry no captions. ``data`` gives ``eval_batch_size``,
    ``num_workers`` and ``cache``; the other arguments are those of :func:`build_train_loader`.
    """
    if manifest.empty:
        raise ReIDError(f"no images to evaluate under {root}")
    dataset = BimodalDataset(
        manifest.reset_index(drop=True),
        root,
        build_eval_transform(preprocessing),
        missing_captions=data.missing_captions,
        cache=data.cache,
        seed=seed,
    )
    return DataLoader(
        dataset,
        batch_size=data.eval_batch_size,
        shuffle=False,
        num_workers=data.num_workers,
        collate_fn=collate_batch,
        pin_memory=pin_memory,
        # Its own generator: iterating draws a base seed, which must not come from the global
        # RNG, or an evaluation in the middle of training would change the training that follows.
        generator=torch.Generator().manual_seed(seed),
    )
