"""Captioning again the images that could not be read (``status == "image_error"``).

A resumed run captions the rows of finished shards whose image was unreadable once more, and puts
each new row in place of the old one *inside the shard that held it*: the shard is rewritten as a
hidden temporary file and ``os.replace``d, so that a relpath appears exactly once in the folder at
every moment (``pd.read_parquet(folder)`` never sees a duplicate, a killed run never loses a
row). When several processes share a folder, each old shard is rewritten by one of them only,
chosen from the shard's name (:func:`owns_shard`), which new shards do not change.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vlreid.captioning.shards import SHARD_SCHEMA, ShardWriter, shard_paths
from vlreid.errors import DataFileError

logger = logging.getLogger(__name__)

IMAGE_ERROR = "image_error"


def owns_shard(shard: Path, worker: int, num_workers: int) -> bool:
    """Whether ``worker`` is the process that rewrites ``shard`` (a stable hash of its name)."""
    return zlib.crc32(shard.name.encode()) % num_workers == worker


def image_error_shards(folder: Path, worker: int = 0, num_workers: int = 1) -> dict[str, Path]:
    """``relpath -> shard`` of the ``image_error`` rows in the shards this worker owns.

    Raises:
        DataFileError: A shard cannot be read.
    """
    errors: dict[str, Path] = {}
    for shard in shard_paths(folder):
        if not owns_shard(shard, worker, num_workers):
            continue
        for stale in shard.parent.glob(f".{shard.name}.*.rewrite.tmp"):
            stale.unlink(missing_ok=True)  # left by a killed rewrite of this shard (never whole)
        try:
            table = pq.read_table(shard, columns=["relpath", "status"])
        except (OSError, pa.ArrowException) as error:
            raise DataFileError(f"cannot read caption shard {shard}: {error}") from error
        for relpath, status in zip(
            table.column("relpath").to_pylist(), table.column("status").to_pylist(), strict=True
        ):
            if status == IMAGE_ERROR:
                errors[relpath] = shard
    return errors


def replace_rows(shard: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite ``shard`` with ``rows`` in place of its rows of the same ``relpath`` (atomic)."""
    by_relpath = {row["relpath"]: row for row in rows}
    old = pq.read_table(shard).to_pylist()
    new = [by_relpath.get(row["relpath"], row) for row in old]
    # Not ShardWriter's ".NAME.tmp": another worker's writer deletes those of its prefix.
    temporary = shard.with_name(f".{shard.name}.{os.getpid()}.rewrite.tmp")
    pq.write_table(pa.Table.from_pylist(new, schema=SHARD_SCHEMA), temporary)
    with open(temporary, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, shard)


class RetryingWriter:
    """A :class:`ShardWriter` for new rows that puts retried rows back into their old shards.

    Args:
        writer: This worker's writer of new shards.
        retried: ``relpath -> shard`` of the rows captioned again (:func:`image_error_shards`).
    """

    def __init__(self, writer: ShardWriter, retried: dict[str, Path]) -> None:
        self.writer = writer
        self.retried = retried
        self.rows_replaced = 0

    def write(self, rows: list[dict[str, Any]]) -> Path | None:
        """Write the new rows as the next shard; rewrite the shards of the retried ones."""
        by_shard: dict[Path, list[dict[str, Any]]] = defaultdict(list)
        fresh = []
        for row in rows:
            shard = self.retried.get(row["relpath"])
            if shard is None:
                fresh.append(row)
            else:
                by_shard[shard].append(row)
        for shard, replacements in by_shard.items():
            replace_rows(shard, replacements)
            self.rows_replaced += len(replacements)
            logger.debug("rewrote %s with %d retried rows", shard.name, len(replacements))
        return self.writer.write(fresh)
