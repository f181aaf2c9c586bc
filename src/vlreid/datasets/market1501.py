"""Market-1501, and the synthetic dataset written in its layout.

Reference:
    Zheng et al. Scalable Person Re-identification: A Benchmark. ICCV 2015.

URL: `<http://www.liangzheng.org/Project/project_reid.html>`_

Dataset statistics:
    - identities: 1501 (+1 for the distractor id 0).
    - images: 12,936 (train, 751 ids) + 3,368 (query, 750 ids) + 15,913 (gallery, 750 ids plus
      the distractor id 0, after dropping 3,819 junk boxes of pid -1).
    - cameras: 6.
"""

from __future__ import annotations

from pathlib import Path

from vlreid.datasets.layout import (
    FolderLayout,
    finish_manifest,
    records_from_folder,
    resolve_layout,
)
from vlreid.datasets.manifest import Manifest

SPLIT_FOLDERS: dict[str, str] = {
    "train": "bounding_box_train",
    "query": "query",
    "gallery": "bounding_box_test",
}
"""Manifest split -> Market-1501 folder."""

_TREE = "{bounding_box_train,query,bounding_box_test}/0002_c1s1_000451_03.jpg"

MARKET1501_LAYOUT = FolderLayout(
    name="Market-1501",
    archive_names=(
        "Market-1501-v15.09.15",
        "Market-1501",
        "market1501",
        "market1501/Market-1501-v15.09.15",
    ),
    required=tuple(SPLIT_FOLDERS.values()),
    tree=_TREE,
)

SYNTHETIC_LAYOUT = FolderLayout(
    name="synthetic", archive_names=(), required=tuple(SPLIT_FOLDERS.values()), tree=_TREE
)


def parse_market_style(
    dataset: str,
    dataset_root: Path,
    camera_range: tuple[int, int | None],
    split_folders: dict[str, str] = SPLIT_FOLDERS,
    suffixes: tuple[str, ...] = (".jpg",),
    drop_junk: bool = True,
) -> Manifest:
    """The manifest of a resolved Market-style folder (``PPPP_cC...`` basenames).

    Args:
        dataset: Dataset name stored in the manifest.
        dataset_root: The folder holding the split folders.
        camera_range: Inclusive 1-based camera bounds (upper ``None``: unbounded).
        split_folders: Manifest split -> folder name.
        suffixes: Image suffixes to list.
        drop_junk: Drop pid ``-1`` in every split.
    """
    records = []
    for split, folder in split_folders.items():
        records += records_from_folder(
            dataset, dataset_root, folder, split, camera_range, suffixes, drop_junk
        )
    return finish_manifest(records, dataset_root)


def parse_market1501(root: str | Path) -> Manifest:
    """Parse Market-1501.

    Follows torchreid and CLIP-ReID: pid and camera come from the basename
    (``0002_c1s1_000451_03.jpg`` = pid 2, camera 1 -> camid 0); junk boxes (pid -1) are dropped
    from every split; distractors (pid 0) stay in the gallery; names ending in ``.jpg.jpg`` (24 in
    the official archive) are kept.

    Args:
        root: ``Market-1501-v15.09.15`` itself, or a folder holding it under
            ``Market-1501-v15.09.15``, ``Market-1501`` or ``market1501``.

    Returns:
        The manifest (DESIGN 3.1) with its resolved dataset folder.
    """
    dataset_root, _ = resolve_layout("market1501", root, [MARKET1501_LAYOUT])
    return parse_market_style("market1501", dataset_root, camera_range=(1, 6))


def parse_synthetic(root: str | Path) -> Manifest:
    """Parse a dataset written by ``reid data synth --out DIR`` (Market-1501 names and rules).

    Args:
        root: ``DIR``, holding ``bounding_box_train``, ``query``, ``bounding_box_test`` (and
            ``attributes.parquet``, not read here).

    Returns:
        The manifest with ``dataset == "synthetic"``; cameras are not bounded above.
    """
    dataset_root, _ = resolve_layout("synthetic", root, [SYNTHETIC_LAYOUT])
    return parse_market_style("synthetic", dataset_root, camera_range=(1, None))
