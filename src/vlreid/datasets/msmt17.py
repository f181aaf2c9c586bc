"""MSMT17 (V1 and V2 layouts).

Reference:
    Wei et al. Person Transfer GAN to Bridge Domain Gap for Person Re-Identification. CVPR 2018.

URL: `<http://www.pkuvmc.com/publications/msmt17.html>`_

Dataset statistics:
    - identities: 4,101 (1,041 train + 3,060 test).
    - images: 30,248 (train list) + 2,373 (val list, same 1,041 ids; 32,621 with train+val)
      + 11,659 (query) + 82,161 (gallery).
    - cameras: 15.
"""

from __future__ import annotations

from pathlib import Path

from vlreid.datasets.layout import (
    FolderLayout,
    check_files_exist,
    finish_manifest,
    read_list,
    resolve_layout,
)
from vlreid.datasets.manifest import Manifest, ReIDRecord
from vlreid.errors import DataFileError

_LISTS = "list_{train,val,query,gallery}.txt"

MSMT17_V1_LAYOUT = FolderLayout(
    name="MSMT17_V1",
    archive_names=("MSMT17_V1", "MSMT17", "msmt17/MSMT17_V1"),
    required=("train", "test"),
    tree=f"{{train,test}}/0000/0000_045_12_0303morning_0006_2.jpg + {_LISTS}",
)
MSMT17_V2_LAYOUT = FolderLayout(
    name="MSMT17_V2",
    archive_names=("MSMT17_V2", "msmt17/MSMT17_V2"),
    required=("mask_train_v2", "mask_test_v2"),
    tree=f"{{mask_train_v2,mask_test_v2}}/0000/0000_045_12_0303morning_0006_2.jpg + {_LISTS}",
)


def _read_split(
    dataset_root: Path, image_folder: str, list_name: str
) -> list[tuple[str, int, int]]:
    """``(relpath, label, camid)`` per line of an official list (``REL_PATH label``)."""
    list_path = dataset_root / list_name
    rows = []
    for fields in read_list(list_path, columns=2):
        listed = fields[0].replace("\\", "/")
        parts = listed[listed.rfind("/") + 1 :].split("_", 3)
        try:
            camera, label = int(parts[2]), int(fields[1])
        except (IndexError, ValueError):
            camera, label = -1, 0
        if not 1 <= camera <= 15:
            raise DataFileError(
                f"{list_path}: line {listed} {fields[1]} is not 'PID/PID_INDEX_CAMERA_... LABEL' "
                f"with camera 01..15 (e.g. 0000/0000_045_12_0303morning_0006_2.jpg 0)"
            )
        rows.append((f"{image_folder}/{listed}", label, camera - 1))
    check_files_exist(dataset_root, (row[0] for row in rows), list_path)
    return rows


def parse_msmt17(root: str | Path, train_val: bool = False) -> Manifest:
    """Parse MSMT17 from its official lists.

    The image lists (``list_train.txt``, ``list_val.txt``, ``list_query.txt``,
    ``list_gallery.txt``, lines ``REL_PATH label``) sit beside the image folders: ``train`` and
    ``test`` (V1) or ``mask_train_v2`` and ``mask_test_v2`` (V2, faces blurred). As in torchreid
    and fast-reid, the pid is the list's label and the camera is the third field of the basename
    (``0000_045_12_...`` -> camera 12 -> camid 11). Test labels restart at 0, so query and gallery
    pids are offset by the largest train pid + 1 (1,041 on the official lists, the number of
    train ids that fast-reid adds: test pids 1,041..4,100) and never collide with train pids.

    Args:
        root: ``MSMT17_V1`` / ``MSMT17_V2`` itself, or a folder holding it (also as
            ``MSMT17`` for V1, or torchreid's ``msmt17/MSMT17_V1``).
        train_val: Train on ``list_train.txt`` plus ``list_val.txt`` (32,621 images, as
            CLIP-ReID trains) instead of ``list_train.txt`` alone (the conventional setting,
            torchreid's and fast-reid's default).

    Returns:
        The manifest (DESIGN 3.1) with its resolved dataset folder.

    Raises:
        DatasetLayoutError: No MSMT17 folder under ``root``.
        DataFileError: A list file is missing or malformed, or lists missing images.
    """
    dataset_root, layout = resolve_layout("msmt17", root, [MSMT17_V1_LAYOUT, MSMT17_V2_LAYOUT])
    train_folder, test_folder = layout.required
    train_rows = _read_split(dataset_root, train_folder, "list_train.txt")
    if train_val:
        train_rows += _read_split(dataset_root, train_folder, "list_val.txt")
    query_rows = _read_split(dataset_root, test_folder, "list_query.txt")
    gallery_rows = _read_split(dataset_root, test_folder, "list_gallery.txt")

    pid_offset = max((label for _, label, _ in train_rows), default=-1) + 1
    records = [
        ReIDRecord(relpath, label, camid, "train", "msmt17") for relpath, label, camid in train_rows
    ]
    for split, rows in (("query", query_rows), ("gallery", gallery_rows)):
        records += [
            ReIDRecord(relpath, label + pid_offset, camid, split, "msmt17")
            for relpath, label, camid in rows
        ]
    return finish_manifest(records, dataset_root)
