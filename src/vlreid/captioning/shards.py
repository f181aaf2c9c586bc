"""Caption shards (DESIGN 3.2): atomic Parquet files, ``_manifest.json``, resume by ``relpath``.

A caption folder holds ``part-00000.parquet``, ``part-00001.parquet``, ... (or
``part-WWWWW-00000.parquet`` per worker when several processes or jobs share the folder) and
``_manifest.json``. A shard is written as ``.part-....parquet.tmp`` and then ``os.replace``d, so a
shard that exists is complete; a run killed mid-write leaves only a hidden ``.tmp`` file, which
readers ignore (pyarrow skips names starting with ``.`` or ``_``) and the next run deletes.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vlreid.errors import DataFileError, ReIDError

logger = logging.getLogger(__name__)

MANIFEST_FILE = "_manifest.json"
SHARD_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("split", pa.string()),
        ("relpath", pa.string()),
        ("pid", pa.int64()),
        ("camid", pa.int64()),
        ("caption", pa.string()),
        ("attributes", pa.string()),
        ("raw", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("captioner", pa.string()),
        ("model", pa.string()),
        ("template", pa.string()),
        ("template_version", pa.string()),
        ("seconds", pa.float32()),
    ]
)
"""Columns of every shard. ``attributes`` is a JSON object of the parsed fields; ``caption`` is
null and ``error`` holds the reason when ``status == "image_error"``."""

STATUSES: tuple[str, ...] = ("ok", "repaired", "unparsed", "image_error")
COMPATIBILITY_KEYS: tuple[str, ...] = (
    "dataset",
    "captioner",
    "model",
    "template",
    "template_version",
    "settings",
)
"""``_manifest.json`` entries that must match for a run to add shards to an existing folder."""

_OWN_FILE = re.compile(
    r"^(\.?part-[\d-]+\.parquet(\.tmp|\.\d+\.rewrite\.tmp)?|_manifest\.json(\.tmp)?)$"
)


def shard_prefix(worker: int, num_workers: int) -> str:
    """The name prefix of one worker's shards: ``part-`` alone, or ``part-WWWWW-`` if shared."""
    return "part-" if num_workers == 1 else f"part-{worker:05d}-"


def shard_paths(folder: Path) -> list[Path]:
    """The finished shards of a folder, sorted by name."""
    return sorted(path for path in Path(folder).glob("part-*.parquet") if path.is_file())


def finished_relpaths(folder: Path) -> set[str]:
    """The ``relpath`` of every row of the finished shards (what a resumed run skips)."""
    relpaths: set[str] = set()
    for path in shard_paths(folder):
        try:
            relpaths.update(pq.read_table(path, columns=["relpath"]).column(0).to_pylist())
        except (OSError, pa.ArrowException) as error:
            raise DataFileError(f"cannot read caption shard {path}: {error}") from error
    return relpaths


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The folder's ``_manifest.json``, or ``None`` when there is none."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise DataFileError(f"cannot read {path}: {error}") from error


def check_folder(folder: Path, manifest: dict[str, Any]) -> bool:
    """Check that a run described by ``manifest`` may write into ``folder``; write nothing.

    Returns:
        ``True`` when the folder holds a compatible run (same :data:`COMPATIBILITY_KEYS`) to
        resume, ``False`` when it is absent or empty.

    Raises:
        ReIDError: The folder is a file, holds captions of another model/template/settings or
            of another dataset root (``root``, the resolved folder the relpaths are relative
            to), or holds files that are not caption shards.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ReIDError(f"caption output {folder} is a file; expected a folder")
    existing = read_manifest(folder)
    if existing is not None:
        differences = [key for key in COMPATIBILITY_KEYS if existing.get(key) != manifest.get(key)]
        if differences:
            details = "; ".join(
                f"{key} {existing.get(key)!r} there, {manifest.get(key)!r} now"
                for key in differences
            )
            raise ReIDError(
                f"caption folder {folder} was written by another run ({details}); "
                "use another --out, or --overwrite to replace it"
            )
        root_there, root_now = existing.get("root"), manifest.get("root")
        if root_there and root_now and root_there != root_now:  # folders older than "root" pass
            raise ReIDError(
                f"caption folder {folder} holds captions of the {existing.get('dataset')} images "
                f"under {root_there}, not {root_now}: use another --out for this dataset, or "
                "--overwrite to replace them"
            )
        return True
    # Hidden names: temporary files of a job that is creating this folder right now.
    entries = sorted(path.name for path in folder.glob("*") if not path.name.startswith("."))
    if entries:
        raise ReIDError(
            f"caption output {folder} is not empty and has no {MANIFEST_FILE} "
            f"({', '.join(entries[:5])}...): it is not a caption folder; use an empty or new "
            "folder, or --overwrite"
        )
    return False


def prepare_folder(folder: Path, manifest: dict[str, Any], overwrite: bool) -> None:
    """Make ``folder`` ready to receive shards of the run described by ``manifest``.

    A new or empty folder gets ``_manifest.json``; a compatible run is resumed as is (see
    :func:`check_folder`). With ``overwrite`` the previous shards and manifest are deleted
    first (and nothing else).

    Raises:
        ReIDError: As :func:`check_folder`, when not ``overwrite``.
    """
    folder = Path(folder)
    if overwrite and folder.is_dir():
        for path in folder.iterdir():
            if _OWN_FILE.match(path.name):
                path.unlink()
        logger.info("--overwrite: removed the previous captions in %s", folder)
    elif check_folder(folder, manifest):
        return
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(folder / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True))


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a hidden temporary file and ``os.replace``."""
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


class ShardWriter:
    """Writes one worker's rows as numbered shards.

    Args:
        folder: The caption folder (prepared with :func:`prepare_folder`).
        prefix: This worker's name prefix (:func:`shard_prefix`); numbering continues after the
            worker's existing shards, and its stale ``.tmp`` files are deleted.
    """

    def __init__(self, folder: Path, prefix: str) -> None:
        self.folder = Path(folder)
        self.prefix = prefix
        own = re.compile(rf"^\.?{re.escape(prefix)}(\d{{5}})\.parquet(\.tmp)?$")
        numbers = [-1]
        for path in self.folder.iterdir():
            match = own.match(path.name)
            if match and match.group(2):
                path.unlink()  # left by a killed run: never complete
            elif match:
                numbers.append(int(match.group(1)))
        self.next_index = max(numbers) + 1
        self.rows_written = 0

    def write(self, rows: list[dict[str, Any]]) -> Path | None:
        """Write ``rows`` (dicts with the :data:`SHARD_SCHEMA` columns) as the next shard."""
        if not rows:
            return None
        table = pa.Table.from_pylist(rows, schema=SHARD_SCHEMA)
        name = f"{self.prefix}{self.next_index:05d}.parquet"
        temporary = self.folder / f".{name}.tmp"
        pq.write_table(table, temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, self.folder / name)
        self.next_index += 1
        self.rows_written += len(rows)
        logger.debug("wrote %s (%d rows)", name, len(rows))
        return self.folder / name


def read_caption_folder(folder: Path) -> pd.DataFrame:
    """All rows of a caption folder, as ``pd.read_parquet(folder)`` returns them.

    Raises:
        DataFileError: The folder is missing or holds no shard.
    """
    folder = Path(folder)
    if not folder.is_dir() or not shard_paths(folder):
        raise DataFileError(
            f"no caption shards in {folder}: expected part-*.parquet files written by "
            "`reid caption`"
        )
    return pd.read_parquet(folder)
