"""The data of a training run: manifest, per-stage training batches, feature and eval loaders.

Every loader here is built from the data path of :mod:`vlreid.datasets.loaders`. Training batches
come in two kinds (``StageConfig.sampler``):

- ``identity``: P x K batches of augmented images (:func:`build_train_loader`), each rank
  taking disjoint whole batches, with two extra views of each image for the stages whose
  method asks for them (SVLL-ReID's image stage);
- ``shuffle``: shuffled batches of training *rows* without images (:class:`ShuffledRows`), for
  stages that look up features cached by ``Stage.prepare`` (CLIP-ReID's prompt stage, which
  CLIP-ReID also draws as plain shuffled batches of 64, not P x K, keeping the last partial one).

Both are re-seeded per epoch from ``(seed, epoch)`` by :meth:`set_epoch`, so an epoch is the same
after a resume.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader

from vlreid.config import DataConfig, RunConfig
from vlreid.datasets.bimodal import mix_seed, read_captions
from vlreid.datasets.loaders import build_eval_loader, build_train_loader, set_epoch
from vlreid.errors import ReIDError

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class RunData:
    """A parsed dataset.

    Attributes:
        manifest: The manifest of DESIGN 3.1.
        root: The resolved dataset folder (``relpath`` is relative to it).
        num_classes: Training identities (labels ``0..num_classes - 1``).
        num_cameras: Cameras over every split (camids ``0..num_cameras - 1``).
    """

    manifest: pd.DataFrame
    root: Path
    num_classes: int
    num_cameras: int

    @property
    def train(self) -> pd.DataFrame:
        """The training rows."""
        return self.manifest[self.manifest["split"] == "train"].reset_index(drop=True)

    @property
    def evaluation(self) -> pd.DataFrame:
        """Query rows then gallery rows."""
        import pandas as pd

        manifest = self.manifest
        parts = [manifest[manifest["split"] == split] for split in ("query", "gallery")]
        return pd.concat(parts, ignore_index=True)


def load_run_data(config: DataConfig) -> RunData:
    """Parse ``config.dataset`` under ``config.root``.

    Raises:
        ReIDError: Empty root, unknown dataset, bad layout, or no training rows.
    """
    from vlreid.datasets import load_manifest

    if not config.root:
        raise ReIDError("data.root is empty: give the dataset folder, e.g. --set data.root=DIR")
    parsed = load_manifest(config.dataset, config.root, **dict(config.options))
    manifest, root = parsed.frame, parsed.root
    train = manifest[manifest["split"] == "train"]
    if train.empty:
        raise ReIDError(f"the {config.dataset} manifest of {root} has no training rows")
    return RunData(
        manifest=manifest,
        root=root,
        num_classes=int(train["label"].max()) + 1,
        num_cameras=int(manifest["camid"].max()) + 1,
    )


def pin_memory(config: RunConfig) -> bool:
    """Pin batches in page-locked memory when training on a GPU."""
    return torch.cuda.is_available() and not config.train.cpu


class ShuffledRows:
    """Shuffled batches of training rows without images: ``labels``, ``pids``, ``camids``,
    ``relpaths`` (and ``captions`` when joined).

    An epoch is a permutation of the rows cut into batches of ``batch_size``, the last partial
    one kept, so that every row is seen once: CLIP-ReID's stage 1 (``iter_list =
    randperm(num_image)``, ``num_image // 64`` full batches and the remainder). On ``n`` ranks
    the batches that do not divide evenly among them are dropped (the partial one among them
    unless the count divides), so that every rank trains the same number of batches.

    Args:
        train: Training rows of the manifest.
        batch_size: Rows per batch (the last one of an epoch may have fewer).
        seed: Seed; epoch ``e`` shuffles with ``mix_seed(seed, e)``.
        captions: Caption of each row, or None.
        num_replicas: Data-parallel ranks (rank ``r`` takes batches ``r, r + n, ...``).
        rank: This rank.
    """

    def __init__(
        self,
        train: pd.DataFrame,
        batch_size: int,
        seed: int,
        captions: list[str] | None = None,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        self.labels = torch.tensor(train["label"].to_numpy(), dtype=torch.int64)
        self.pids = torch.tensor(train["pid"].to_numpy(), dtype=torch.int64)
        self.camids = torch.tensor(train["camid"].to_numpy(), dtype=torch.int64)
        self.relpaths = train["relpath"].astype(str).tolist()
        self.captions = captions
        self.batch_size = batch_size
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0
        if len(self) == 0:
            raise ReIDError(
                f"{len(self.relpaths)} training rows give no batch of {batch_size} per rank "
                f"on {num_replicas} rank(s)"
            )

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's order."""
        self.epoch = epoch

    def __len__(self) -> int:
        """Batches of this rank in an epoch (the partial batch counted)."""
        return -(-len(self.relpaths) // self.batch_size) // self.num_replicas

    def __iter__(self) -> Iterator[dict[str, Any]]:
        generator = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch))
        order = torch.randperm(len(self.relpaths), generator=generator)
        batches = order.split(self.batch_size)
        for indices in batches[self.rank :: self.num_replicas][: len(self)]:
            batch: dict[str, Any] = {
                "labels": self.labels[indices],
                "pids": self.pids[indices],
                "camids": self.camids[indices],
                "relpaths": [self.relpaths[i] for i in indices.tolist()],
            }
            if self.captions is not None:
                batch["captions"] = [self.captions[i] for i in indices.tolist()]
            yield batch


def build_stage_loader(
    config: RunConfig,
    name: str,
    data: RunData,
    num_replicas: int = 1,
    rank: int = 0,
) -> DataLoader | ShuffledRows:
    """The training batches of stage ``name``; call :func:`set_loader_epoch` before each epoch.

    P x K batches also carry the ``views`` that the method asks for this stage
    (``view_augmentation(name)`` of its options: SVLL-ReID's image stage).
    """
    stage = config.stages[name]
    data_config = replace(config.data, batch_size=stage.batch_size or config.data.batch_size)
    if stage.sampler == "shuffle":
        captions = None
        if data_config.captions:
            from vlreid.datasets.bimodal import join_captions

            captions_dir = Path(data_config.captions)
            shards = read_captions(captions_dir)
            captions = join_captions(
                data.train, shards, data_config.missing_captions, str(captions_dir)
            )
        return ShuffledRows(
            data.train, data_config.batch_size, config.train.seed, captions, num_replicas, rank
        )
    return build_train_loader(
        data.manifest,
        data.root,
        data_config,
        config.model.train_preprocessing(),
        config.train.seed,
        num_replicas=num_replicas,
        rank=rank,
        pin_memory=pin_memory(config),
        view_augmentation=config.method.options.view_augmentation(name),
    )


def check_stage_batches(config: RunConfig, data: RunData, num_replicas: int = 1) -> None:
    """Refuse, before any image is read or any model evaluated, stages whose batches cannot be
    drawn (too few identities for P x K, too few rows) and training images without a caption.

    Raises:
        ReIDError: Naming the stage, or the caption folder.
    """
    from vlreid.datasets.samplers import IdentitySampler

    labels = data.train["label"].tolist()
    for name in config.stage_names():
        stage = config.stages[name]
        batch_size = stage.batch_size or config.data.batch_size
        try:
            if stage.sampler == "shuffle":
                ShuffledRows(data.train, batch_size, config.train.seed, None, num_replicas)
            else:
                IdentitySampler(labels, batch_size, config.data.num_instances, 0, num_replicas)
        except ReIDError as error:
            raise ReIDError(
                f"stage {name}: {error}; lower data.batch_size (or stages.{name}.batch_size)"
            ) from None
    if config.data.captions:
        from vlreid.datasets.bimodal import join_captions

        captions_dir = Path(config.data.captions)
        shards = read_captions(captions_dir)
        join_captions(data.train, shards, config.data.missing_captions, str(captions_dir))


def set_loader_epoch(loader: DataLoader | ShuffledRows, epoch: int) -> None:
    """Select the sampler order and augmentation seeds of ``epoch``."""
    if isinstance(loader, ShuffledRows):
        loader.set_epoch(epoch)
    else:
        set_epoch(loader, epoch)


def build_feature_loader(config: RunConfig, data: RunData) -> DataLoader:
    """Every training image once, evaluation transform, not sharded (for ``Stage.prepare``).

    The evaluation transform resizes with ``model.interpolation`` (bilinear), as CLIP-ReID's
    stage-1 ``train_set_normal`` uses its ``val_transforms``.

    Images are decoded only if the loader is iterated (no cache, whatever ``data.cache`` says).
    """
    return build_eval_loader(
        data.train,
        data.root,
        replace(config.data, cache=None),
        config.model.preprocessing(),
        config.train.seed,
        pin_memory=pin_memory(config),
    )


def build_eval_shard(
    config: RunConfig, data: RunData, num_replicas: int = 1, rank: int = 0
) -> tuple[DataLoader, torch.Tensor]:
    """This rank's share of the query + gallery images (rows ``rank::num_replicas``).

    Returns:
        The loader and the ``(n,)`` row indices it covers in :attr:`RunData.evaluation`.
    """
    rows = data.evaluation
    indices = torch.arange(len(rows))[rank::num_replicas]
    shard = rows.iloc[indices.numpy()].reset_index(drop=True)
    loader = build_eval_loader(
        shard,
        data.root,
        config.data,
        config.model.preprocessing(),
        config.train.seed,
        pin_memory=pin_memory(config),
    )
    return loader, indices
