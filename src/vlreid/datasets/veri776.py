"""VeRi-776 (vehicle re-identification).

Reference:
    Liu et al. A Deep Learning-Based Approach to Progressive Vehicle Re-identification for Urban
    Surveillance. ECCV 2016.

URL: `<https://vehiclereid.github.io/VeRi/>`_

Dataset statistics:
    - identities: 776 (576 train + 200 test).
    - images: 37,778 (train) + 1,678 (query) + 11,579 (gallery).
    - cameras: 20 (all in train; 19 in query and gallery).
"""

from __future__ import annotations

from pathlib import Path

from vlreid.datasets.layout import FolderLayout, resolve_layout
from vlreid.datasets.manifest import Manifest
from vlreid.datasets.market1501 import parse_market_style

VERI776_SPLIT_FOLDERS: dict[str, str] = {
    "train": "image_train",
    "query": "image_query",
    "gallery": "image_test",
}
"""Manifest split -> VeRi folder."""

VERI776_LAYOUT = FolderLayout(
    name="VeRi",
    archive_names=("VeRi", "veri", "VeRi-776"),
    required=tuple(VERI776_SPLIT_FOLDERS.values()),
    tree="{image_train,image_query,image_test}/0001_c001_00016450_0.jpg",
)


def parse_veri776(root: str | Path) -> Manifest:
    """Parse VeRi-776 (names ``VVVV_cCCC_FFFFFFFF_N.jpg``, cameras c001..c020 -> camid 0..19).

    Follows torchreid, fast-reid and CLIP-ReID: the official folders are used as they are, and
    the evaluation's same-pid same-camera filtering plays the role of the official junk index
    (``jk_index.txt``), as in those toolkits.

    Args:
        root: ``VeRi`` itself, or a folder holding it.

    Returns:
        The manifest (DESIGN 3.1) with its resolved dataset folder.
    """
    dataset_root, _ = resolve_layout("veri776", root, [VERI776_LAYOUT])
    return parse_market_style(
        "veri776",
        dataset_root,
        camera_range=(1, 20),
        split_folders=VERI776_SPLIT_FOLDERS,
        drop_junk=False,
    )
