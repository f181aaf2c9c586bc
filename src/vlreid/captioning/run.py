"""``reid caption``: caption one split of a dataset into resumable Parquet shards.

The run sorts the split's images by ``relpath``, keeps this worker's slice
(:mod:`vlreid.captioning.data_parallel`), skips the images already in finished shards, and captions
the rest in batches: decode (one batch ahead, in a thread), ask the captioner, parse each answer
against the template (:func:`vlreid.templates.parse_answer`), and write a shard every
``shard_size`` rows. Killing the run loses at most the rows not yet in a shard; starting it again
captions exactly those.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from vlreid import __version__
from vlreid.captioning.backends import (
    build_captioner,
    captioner_identity,
    own_attributes,
)
from vlreid.captioning.caption_loop import caption_into_shards
from vlreid.captioning.data_parallel import DistributedContext
from vlreid.captioning.llava import LlavaSettings
from vlreid.captioning.protocol import Captioner
from vlreid.captioning.retry import RetryingWriter, image_error_shards
from vlreid.captioning.shards import (
    STATUSES,
    ShardWriter,
    check_folder,
    finished_relpaths,
    prepare_folder,
)
from vlreid.captioning.shards import shard_prefix as make_shard_prefix
from vlreid.errors import ReIDError
from vlreid.templates import Template, load_template, render_caption

logger = logging.getLogger(__name__)

VEHICLE_DATASETS: frozenset[str] = frozenset({"veri776", "vehicleid"})
"""Datasets captioned with the vehicle template when the template is ``auto``."""


@dataclass(frozen=True)
class CaptionRunConfig:
    """Options of a caption run.

    Attributes:
        captioner: ``llava`` or ``attributes``.
        template: Template name or ``.toml`` path (:func:`vlreid.templates.load_template`), or
            ``auto``: ``vehicle`` for :data:`VEHICLE_DATASETS`, ``person`` otherwise.
        llava: Model and generation settings of the ``llava`` backend.
        attributes: Label file of the ``attributes`` backend.
        splits: Splits to caption (``train``, ``query``, ``gallery``).
        batch_size: Images per generation call.
        shard_size: Rows per Parquet shard (at batch granularity).
        num_shards: Jobs of a job array sharing the output folder.
        shard_index: This job's index in the array.
        overwrite: Replace a caption folder written by another run.
        progress: Show a progress bar (rank 0 only).
    """

    captioner: str = "llava"
    template: str = "auto"
    llava: LlavaSettings = field(default_factory=LlavaSettings)
    attributes: Path | None = None
    splits: tuple[str, ...] = ("train",)
    batch_size: int = 8
    shard_size: int = 1000
    num_shards: int = 1
    shard_index: int = 0
    overwrite: bool = False
    progress: bool = True


@dataclass(frozen=True)
class CaptionSummary:
    """What a run did, summed over all processes.

    Attributes:
        images: Images captioned by this run (all statuses).
        skipped: Images found in finished shards and not captioned again.
        ok: Answers that followed the template.
        repaired: Answers rebuilt into the canonical caption.
        unparsed: Answers with no field read.
        image_errors: Images that could not be read.
        seconds: Wall time of the captioning loop (the slowest process).
    """

    images: int
    skipped: int
    ok: int
    repaired: int
    unparsed: int
    image_errors: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        """Captioned images per second of wall time."""
        return self.images / self.seconds if self.seconds > 0 else 0.0


def caption_dataset(
    dataset: str,
    root: Path,
    out: Path,
    config: CaptionRunConfig,
    dataset_options: dict[str, Any] | None = None,
) -> CaptionSummary:
    """Parse a dataset folder and caption it into ``out`` (see :func:`caption_manifest`)."""
    from vlreid.datasets import load_manifest

    manifest = load_manifest(dataset, root, **(dataset_options or {}))
    return caption_manifest(manifest.frame, manifest.root, out, config)


def caption_manifest(
    manifest: pd.DataFrame,
    dataset_root: Path,
    out: Path,
    config: CaptionRunConfig,
    captioner: Captioner | None = None,
) -> CaptionSummary:
    """Caption the manifest rows of ``config.splits`` into the shard folder ``out``.

    Args:
        manifest: Rows of DESIGN 3.1.
        dataset_root: Folder the ``relpath`` column is relative to.
        out: Caption folder (created; resumed if written by a compatible run).
        config: Run options.
        captioner: A ready backend; built from ``config`` when ``None``.

    Returns:
        The summary, summed over all processes of a torchrun / accelerate launch.

    Raises:
        ReIDError: No image in the splits, bad options, missing model or labels, or a caption
            folder written by another run.
    """
    dataset_root = Path(dataset_root).resolve()  # recorded in _manifest.json; symlinks resolved
    rows = manifest[manifest["split"].isin(config.splits)].sort_values("relpath")
    if rows.empty:
        raise ReIDError(
            f"no image to caption in split(s) {', '.join(config.splits)} under {dataset_root} "
            f"(the manifest has {len(manifest)} rows in splits {sorted(set(manifest['split']))})"
        )
    template_name = config.template
    if template_name == "auto":
        is_vehicle = str(rows["dataset"].iloc[0]) in VEHICLE_DATASETS
        template_name = "vehicle" if is_vehicle else "person"
    template = load_template(template_name)
    if config.captioner == "attributes" and config.attributes is None:
        config = replace(config, attributes=own_attributes(rows, dataset_root))
    if config.overwrite and config.num_shards > 1:
        raise ReIDError(
            "--overwrite cannot be combined with --num-shards > 1 (the jobs would delete each "
            "other's shards): clear the folder once, then start the job array"
        )
    context = DistributedContext.from_environment()
    try:
        worker, num_workers = context.worker(config.num_shards, config.shard_index)
        identity = captioner_identity(config, captioner)
        planned = describe_run(rows, identity, template, config, dataset_root)
        error: ReIDError | None = None
        try:  # refuse a foreign folder before spending minutes loading a model
            if context.rank == 0 and not config.overwrite:
                check_folder(out, planned)
        except ReIDError as caught:
            error = caught
        context.check_all(error)
        try:
            captioner = captioner or build_captioner(config, template, context.local_rank)
            if context.rank == 0:
                runtime = captioner.runtime() if hasattr(captioner, "runtime") else {}
                prepare_folder(out, {**planned, "runtime": runtime}, config.overwrite)
        except ReIDError as caught:
            error = caught
        context.check_all(error)
        done = finished_relpaths(out)
        mine = rows.iloc[worker::num_workers]
        retried = image_error_shards(Path(out), worker, num_workers)
        again = rows[rows["relpath"].isin(retried)]  # unreadable last time: try them again
        fresh = mine[~mine["relpath"].isin(done)]
        pending = pd.concat([again, fresh])
        # Summed over workers: the rows already done, less those tried again.
        skipped = len(mine) - len(fresh) - len(again)
        logger.info(
            "worker %d/%d: %d images, %d already captioned, %d unreadable last time (tried again)",
            worker,
            num_workers,
            len(mine),
            len(mine) - len(fresh),
            len(again),
        )
        shards = ShardWriter(Path(out), make_shard_prefix(worker, num_workers))
        writer = RetryingWriter(shards, {relpath: retried[relpath] for relpath in again.relpath})
        render_caption(template, {})  # loads the CLIP tokenizer outside the timed loop
        started = time.perf_counter()
        counts = caption_into_shards(
            pending,
            Path(dataset_root),
            captioner,
            template,
            writer,
            config.batch_size,
            config.shard_size,
            config.progress and context.rank == 0,
        )
        elapsed = time.perf_counter() - started
        totals = context.reduce([len(pending), skipped, *(counts[status] for status in STATUSES)])
        (seconds,) = context.reduce([elapsed], maximum=True)
    finally:
        context.close()
    images, skipped, ok, repaired, unparsed, image_errors = (int(value) for value in totals)
    return CaptionSummary(images, skipped, ok, repaired, unparsed, image_errors, seconds)


def describe_run(
    rows: pd.DataFrame,
    identity: dict[str, Any],
    template: Template,
    config: CaptionRunConfig,
    dataset_root: Path | None = None,
) -> dict[str, Any]:
    """The ``_manifest.json`` of a run: :data:`COMPATIBILITY_KEYS`, the dataset root the
    relpaths are relative to, and provenance."""
    return {
        "dataset": str(rows["dataset"].iloc[0]),
        "root": str(dataset_root) if dataset_root is not None else None,
        **identity,
        "template": template.name,
        "template_version": template.version,
        "instruction": template.instruction,
        "splits": list(config.splits),
        "batch_size": config.batch_size,
        "package_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def format_summary(summary: CaptionSummary, out: Path) -> str:
    """One line for the command line: counts by status and throughput."""
    return (
        f"{summary.images} images captioned into {out} ({summary.skipped} already done): "
        f"{summary.ok} ok, {summary.repaired} repaired, {summary.unparsed} unparsed, "
        f"{summary.image_errors} image errors; {summary.images_per_second:.1f} images/s"
    )


def select_splits(value: Sequence[str]) -> tuple[str, ...]:
    """Expand ``all`` into the three splits and validate split names."""
    splits = ("train", "query", "gallery") if "all" in value else tuple(value)
    unknown = sorted(set(splits) - {"train", "query", "gallery"})
    if unknown:
        raise ReIDError(f"unknown split(s) {unknown}: expected train, query, gallery or all")
    return splits
