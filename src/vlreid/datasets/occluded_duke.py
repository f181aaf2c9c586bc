"""Occluded-Duke: DukeMTMC-reID re-split so that queries are occluded.

Reference:
    Miao et al. Pose-Guided Feature Alignment for Occluded Person Re-Identification. ICCV 2019.

URL: `<https://github.com/lightas/Occluded-DukeMTMC-Dataset>`_

Dataset statistics:
    - identities: 702 (train) + 519 (query) / 1,110 (gallery).
    - images: 15,618 (train) + 2,210 (query) + 17,661 (gallery).
    - cameras: 8.
"""

from __future__ import annotations

from pathlib import Path

from vlreid.datasets.layout import FolderLayout, resolve_layout
from vlreid.datasets.manifest import Manifest
from vlreid.datasets.market1501 import SPLIT_FOLDERS, parse_market_style

OCCLUDED_DUKE_LAYOUT = FolderLayout(
    name="Occluded_Duke",
    archive_names=("Occluded_Duke", "dukemtmcreid/Occluded_Duke", "occluded_duke"),
    required=tuple(SPLIT_FOLDERS.values()),
    tree="{bounding_box_train,query,bounding_box_test}/0019_c1_f0051230.jpg",
)


def parse_occluded_duke(root: str | Path) -> Manifest:
    """Parse Occluded-Duke (DukeMTMC-reID names and rules, folder ``Occluded_Duke``).

    Args:
        root: ``Occluded_Duke`` itself, or a folder holding it (also CLIP-ReID's
            ``dukemtmcreid/Occluded_Duke``).

    Returns:
        The manifest (DESIGN 3.1) with its resolved dataset folder.
    """
    dataset_root, _ = resolve_layout("occluded_duke", root, [OCCLUDED_DUKE_LAYOUT])
    return parse_market_style("occluded_duke", dataset_root, camera_range=(1, 8), drop_junk=False)
