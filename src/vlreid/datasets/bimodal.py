"""The bi-modal (image + caption) dataset: a manifest joined with caption shards.

Rows come from a manifest (DESIGN 3.1) and captions, optionally, from the Parquet shards of
DESIGN 3.2, joined by ``relpath``. A shard row with ``status == "image_error"`` carries no usable
caption. An image without a usable caption is an error by default (the message gives the count and
examples); ``missing_captions="fallback"`` gives it :data:`FALLBACK_CAPTION` instead, the neutral
sentence of CLIP-ReID's prompt family, so that training can run on a partially captioned dataset.

For a self-supervised stage (SVLL-ReID's image stage) the dataset also draws
:data:`VIEWS_PER_IMAGE` views of each image with a second transform, from the same decoded (or
cached) pixels as the main image and from a generator of their own, so the main images are the
same with or without views.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import torch
from torch.utils.data import Dataset, default_collate

from vlreid.datasets.cache import PackedImageCache, read_image
from vlreid.datasets.manifest import MANIFEST_COLUMNS
from vlreid.datasets.transforms import ReIDTransform
from vlreid.errors import DataFileError, ReIDError

if sys.version_info >= (3, 11):
    from typing import NotRequired
else:  # typing_extensions comes with torch
    from typing_extensions import NotRequired

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

FALLBACK_CAPTION = "A photo of a person."
MISSING_CAPTIONS: tuple[str, ...] = ("error", "fallback")
UNUSABLE_STATUSES: frozenset[str] = frozenset({"image_error"})
VIEWS_PER_IMAGE = 2  # SimCLR's pair
_VIEW_STREAM = 1  # mixed into the augmentation seed for the views' generator


def mix_seed(*values: int) -> int:
    """A deterministic 63-bit mix of integers (seed, epoch, rank, worker): distinct streams."""
    mixed = 0
    for value in values:
        mixed = (mixed * 1_000_003 + int(value) + 0x9E3779B9) % (2**63 - 1)
    return mixed


class ReIDSample(TypedDict):
    """One item of :class:`BimodalDataset`."""

    image: torch.Tensor  # (3, H, W) float32
    label: int
    pid: int
    camid: int
    relpath: str
    caption: NotRequired[str]
    views: NotRequired[torch.Tensor]  # (VIEWS_PER_IMAGE, 3, H, W) float32


class ReIDBatch(TypedDict):
    """A collated batch.

    Keys: ``images`` ``(B, 3, H, W)`` float32; ``labels``, ``pids``, ``camids`` ``(B,)`` int64;
    ``relpaths`` list of B str; ``captions`` list of B str, only when captions are joined;
    ``views`` ``(B, VIEWS_PER_IMAGE, 3, H, W)`` float32, only when the dataset draws views.
    """

    images: torch.Tensor
    labels: torch.Tensor
    pids: torch.Tensor
    camids: torch.Tensor
    relpaths: list[str]
    captions: NotRequired[list[str]]
    views: NotRequired[torch.Tensor]


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run per-image tensor work on one intra-op thread, then restore the thread count.

    A 256x128 image is large enough for torch to split each operation over its threads, and on a
    busy machine every split waits for a core: measured on 2 shared cores, one uint8 -> float
    conversion took 12 ms on 2 threads against 0.013 ms on 1. Data-loader workers already run on
    one thread; this covers ``num_workers=0``. Switching costs under a microsecond.
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def collate_batch(samples: Sequence[ReIDSample]) -> ReIDBatch:
    """Stack samples into a :class:`ReIDBatch`."""
    with single_threaded():
        return _collate(samples)


def _collate(samples: Sequence[ReIDSample]) -> ReIDBatch:
    batch = ReIDBatch(
        # default_collate stacks straight into shared memory inside a worker (no extra copy).
        images=default_collate([s["image"] for s in samples]),
        labels=torch.tensor([s["label"] for s in samples], dtype=torch.int64),
        pids=torch.tensor([s["pid"] for s in samples], dtype=torch.int64),
        camids=torch.tensor([s["camid"] for s in samples], dtype=torch.int64),
        relpaths=[s["relpath"] for s in samples],
    )
    if samples and "caption" in samples[0]:
        batch["captions"] = [s["caption"] for s in samples]
    if samples and "views" in samples[0]:
        batch["views"] = default_collate([s["views"] for s in samples])
    return batch


def read_captions(captions_dir: Path) -> pd.DataFrame:
    """Read every ``part-*.parquet`` shard of a caption folder (names starting ``.``/``_`` skipped).

    Raises:
        DataFileError: The folder is missing, unreadable, or lacks ``relpath``/``caption``.
    """
    import pandas as pd

    captions_dir = Path(captions_dir)
    if not captions_dir.is_dir() or not any(captions_dir.glob("part-*.parquet")):
        raise DataFileError(
            f"no caption shards in {captions_dir}: expected a folder of part-*.parquet files "
            "written by `reid caption`"
        )
    try:
        captions = pd.read_parquet(captions_dir)
    except (OSError, ValueError) as error:
        raise DataFileError(f"cannot read caption shards in {captions_dir}: {error}") from error
    missing = {"relpath", "caption"} - set(captions.columns)
    if missing:
        raise DataFileError(
            f"caption shards in {captions_dir} lack column(s) {sorted(missing)}; "
            f"found {list(captions.columns)}"
        )
    return captions


def join_captions(
    manifest: pd.DataFrame,
    captions: pd.DataFrame,
    missing_captions: str = "error",
    source: str = "the caption shards",
) -> list[str]:
    """The caption of each manifest row, joined by ``relpath``.

    Args:
        manifest: Rows to caption.
        captions: Shard rows with ``relpath``, ``caption`` and optionally ``status``.
        missing_captions: ``"error"`` or ``"fallback"`` (use :data:`FALLBACK_CAPTION`).
        source: Where the captions came from, for messages.

    Returns:
        One caption per manifest row, in manifest order.

    Raises:
        ReIDError: Unknown ``missing_captions``, or rows without a usable caption under
            ``"error"``.
    """
    if missing_captions not in MISSING_CAPTIONS:
        raise ReIDError(
            f"unknown missing_captions {missing_captions!r}; expected one of {MISSING_CAPTIONS}"
        )
    usable = captions[captions["caption"].notna()]
    if "status" in usable.columns:
        usable = usable[~usable["status"].isin(UNUSABLE_STATUSES)]
    duplicated = usable["relpath"].duplicated(keep="last")
    if duplicated.any():
        logger.warning(
            "%d relpaths appear more than once in %s; using the last row of each",
            int(duplicated.sum()),
            source,
        )
        usable = usable[~duplicated]
    by_relpath = dict(zip(usable["relpath"], usable["caption"], strict=True))
    joined = [by_relpath.get(relpath) for relpath in manifest["relpath"]]
    missing = [r for r, caption in zip(manifest["relpath"], joined, strict=True) if caption is None]
    if missing and missing_captions == "error":
        examples = ", ".join(missing[:3])
        raise ReIDError(
            f"{len(missing)} of {len(joined)} images have no usable caption in {source} "
            f"(e.g. {examples}){_unreadable_note(captions, missing)}; caption them (reid "
            "caption with the same --out captions the missing and unreadable ones), or choose "
            f"the fallback caption {FALLBACK_CAPTION!r} explicitly (missing_captions='fallback')"
        )
    if missing:
        logger.warning(
            "%d of %d images have no usable caption in %s; using %r",
            len(missing),
            len(joined),
            source,
            FALLBACK_CAPTION,
        )
    return [FALLBACK_CAPTION if caption is None else str(caption) for caption in joined]


def _unreadable_note(captions: pd.DataFrame, missing: list[str]) -> str:
    """``"; N of them could not be read when captioned (REASON)"`` for ``image_error`` rows."""
    if "status" not in captions.columns:
        return ""
    errors = captions[(captions["status"] == "image_error") & captions["relpath"].isin(missing)]
    if errors.empty:
        return ""
    reason = errors["error"].iloc[0] if "error" in errors.columns else None
    detail = f": {errors['relpath'].iloc[0]}: {reason}" if reason else ""
    return f"; {len(errors)} of them could not be read when captioned (image_error{detail})"


class BimodalDataset(Dataset[ReIDSample]):
    """Images of a manifest, with their captions when a caption folder is given.

    Args:
        manifest: Rows with the columns of :data:`MANIFEST_COLUMNS`.
        root: Dataset root; image ``i`` is ``root / manifest.relpath[i]``.
        transform: Eval or train transform; its ``resize`` step feeds the cache.
        captions_dir: Caption shard folder, or ``None`` for images only.
        missing_captions: ``"error"`` or ``"fallback"``; see :func:`join_captions`.
        cache: ``None`` (decode every time) or ``"memory"`` (:class:`PackedImageCache`).
        seed: Base seed of the augmentation; epoch ``e`` draws from ``mix_seed(seed, e)``.
        view_transform: Transform of the :data:`VIEWS_PER_IMAGE` extra views of each sample
            (``views``), or None for none; it augments the pixels that ``transform`` resized.
    """

    def __init__(
        self,
        manifest: pd.DataFrame,
        root: Path | str,
        transform: ReIDTransform,
        captions_dir: Path | str | None = None,
        missing_captions: str = "error",
        cache: str | None = None,
        seed: int = 0,
        view_transform: ReIDTransform | None = None,
    ) -> None:
        missing_columns = set(MANIFEST_COLUMNS) - set(manifest.columns)
        if missing_columns:
            raise ReIDError(f"manifest lacks column(s) {sorted(missing_columns)}")
        if cache not in (None, "memory"):
            raise ReIDError(f"unknown cache {cache!r}; expected None or 'memory'")
        if missing_captions not in MISSING_CAPTIONS:
            raise ReIDError(
                f"unknown missing_captions {missing_captions!r}; expected one of {MISSING_CAPTIONS}"
            )
        self.root = Path(root)
        self.transform = transform
        self.relpaths: list[str] = manifest["relpath"].astype(str).tolist()
        self.labels: list[int] = manifest["label"].astype("int64").tolist()
        self.pids: list[int] = manifest["pid"].astype("int64").tolist()
        self.camids: list[int] = manifest["camid"].astype("int64").tolist()
        self.captions: list[str] | None = None
        if captions_dir is not None:
            shards = read_captions(Path(captions_dir))
            self.captions = join_captions(manifest, shards, missing_captions, str(captions_dir))
        self.cache: PackedImageCache | None = None
        if cache == "memory":
            self.cache = PackedImageCache(
                [self.root / relpath for relpath in self.relpaths], transform.resize
            )
        self.view_transform = view_transform
        self.seed = seed
        self.epoch_seed = seed
        self.generator = torch.Generator()
        self.view_generator = torch.Generator()
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Reseed the augmentation for ``epoch`` (accelerate's loaders call this too)."""
        self.reseed(mix_seed(self.seed, epoch))

    def reseed(self, seed: int) -> None:
        """Reset the augmentation generators; loader workers derive their seeds from ``seed``."""
        self.epoch_seed = seed
        self.generator.manual_seed(seed)
        self.view_generator.manual_seed(mix_seed(seed, _VIEW_STREAM))

    def __len__(self) -> int:
        return len(self.relpaths)

    def load_pixels(self, index: int) -> torch.Tensor:
        """Resized ``uint8`` ``(3, H, W)`` pixels of image ``index``, from the cache if any."""
        if self.cache is not None:
            return self.cache[index]
        return self.transform.resize(read_image(self.root / self.relpaths[index]))

    def __getitem__(self, index: int) -> ReIDSample:
        views = None
        with single_threaded():
            pixels = self.load_pixels(index)
            image = self.transform.augment(pixels, self.generator)
            if self.view_transform is not None:
                draws = range(VIEWS_PER_IMAGE)
                views = torch.stack(
                    [self.view_transform.augment(pixels, self.view_generator) for _ in draws]
                )
        sample = ReIDSample(
            image=image,
            label=self.labels[index],
            pid=self.pids[index],
            camid=self.camids[index],
            relpath=self.relpaths[index],
        )
        if self.captions is not None:
            sample["caption"] = self.captions[index]
        if views is not None:
            sample["views"] = views
        return sample
