"""The manifest: one row per image of a ReID benchmark (DESIGN 3.1).

A parsed benchmark is a :class:`Manifest`: a :class:`pandas.DataFrame` with the columns of
:data:`MANIFEST_COLUMNS` (``frame``) and the resolved dataset folder its ``relpath`` column is
relative to (``root``). Parsers build a list of :class:`ReIDRecord` per split and call
:func:`build_manifest`, which relabels the train split (contiguous 0..N-1 labels sorted by pid)
and sets ``label = -1`` outside train; :func:`vlreid.datasets.layout.finish_manifest` pairs the
frame with its root.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

MANIFEST_COLUMNS: tuple[str, ...] = ("dataset", "split", "relpath", "pid", "camid", "label")
SPLITS: tuple[str, ...] = ("train", "query", "gallery")


@dataclass(frozen=True)
class ReIDRecord:
    """One image of a benchmark.

    Attributes:
        relpath: Path relative to the dataset root, with ``/`` separators (the join key with
            caption shards).
        pid: Identity as named by the dataset (not relabelled).
        camid: 0-based camera index.
        split: ``train``, ``query`` or ``gallery``.
        dataset: Dataset name, e.g. ``market1501``.
    """

    relpath: str
    pid: int
    camid: int
    split: str
    dataset: str


@dataclass(frozen=True, eq=False)
class Manifest:
    """A parsed benchmark: its manifest rows and the folder they are relative to.

    Image ``i`` is ``manifest.root / manifest.frame.relpath[i]``, whichever folder the user
    passed (the dataset folder or a parent holding it under its archive name).

    Attributes:
        frame: One row per image, columns :data:`MANIFEST_COLUMNS` (DESIGN 3.1).
        root: The resolved dataset folder.
    """

    frame: pd.DataFrame
    root: Path

    def __len__(self) -> int:
        """Number of images (rows)."""
        return len(self.frame)

    def split_rows(self, split: str) -> pd.DataFrame:
        """The rows of one split (``train``, ``query`` or ``gallery``), index reset, in order."""
        return self.frame[self.frame["split"] == split].reset_index(drop=True)


def build_manifest(records: Iterable[ReIDRecord]) -> pd.DataFrame:
    """Turn records into a manifest DataFrame with train labels.

    Train labels are the rank of the pid among the sorted distinct train pids (the convention of
    torchreid and CLIP-ReID); query and gallery rows get ``label = -1``.

    Args:
        records: Records of all splits, in the order they should appear.

    Returns:
        A DataFrame with columns :data:`MANIFEST_COLUMNS` (``pid``, ``camid``, ``label`` int64).
    """
    frame = pd.DataFrame(
        [(r.dataset, r.split, r.relpath, r.pid, r.camid) for r in records],
        columns=list(MANIFEST_COLUMNS[:5]),
    )
    frame = frame.astype({"pid": "int64", "camid": "int64"})
    is_train = frame["split"] == "train"
    train_pids = sorted(frame.loc[is_train, "pid"].unique().tolist())
    pid_to_label = {pid: label for label, pid in enumerate(train_pids)}
    frame["label"] = -1
    frame.loc[is_train, "label"] = frame.loc[is_train, "pid"].map(pid_to_label)
    frame["label"] = frame["label"].astype("int64")
    return frame.reset_index(drop=True)


def split_statistics(manifest: pd.DataFrame) -> dict[str, dict[str, int]]:
    """The split table the reference toolkits print.

    Returns:
        ``{"train": {"ids": N, "images": N, "cameras": N}, "query": {...}, "gallery": {...}}``.
    """
    stats: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        rows = manifest[manifest["split"] == split]
        stats[split] = {
            "ids": int(rows["pid"].nunique()),
            "images": len(rows),
            "cameras": int(rows["camid"].nunique()),
        }
    return stats
