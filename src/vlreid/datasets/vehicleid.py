"""VehicleID (vehicle re-identification, test sets of 800 / 1,600 / 2,400 vehicles).

Reference:
    Liu et al. Deep Relative Distance Learning: Tell the Difference Between Similar Vehicles.
    CVPR 2016.

URL: `<https://pkuml.org/resources/pku-vehicleid.html>`_

Dataset statistics:
    - train: 13,164 vehicles, 113,346 images.
    - test 800 (small): 800 vehicles, 6,493 images; 1600 (medium): 1,600 / 13,377;
      2400 (large): 2,400 / 19,777.
    - cameras: not annotated.
"""

from __future__ import annotations

import random
from pathlib import Path

from vlreid.datasets.layout import (
    FolderLayout,
    check_files_exist,
    finish_manifest,
    parse_int,
    read_list,
    resolve_layout,
)
from vlreid.datasets.manifest import Manifest, ReIDRecord
from vlreid.errors import ReIDError

TEST_SIZES: tuple[int, ...] = (800, 1600, 2400)
QUERY_CAMID = 0
"""Camera given to train and query images (VehicleID has no camera labels)."""
GALLERY_CAMID = 1
"""Camera given to gallery images, so that same-camera filtering never removes a match."""

VEHICLEID_LAYOUT = FolderLayout(
    name="VehicleID_V1.0",
    archive_names=("VehicleID_V1.0", "VehicleID", "vehicleid"),
    required=("image", "train_test_split"),
    tree="{image/0000001.jpg, train_test_split/{train_list,test_list_800}.txt}",
)


def _read_vehicle_list(dataset_root: Path, list_name: str) -> list[tuple[str, int]]:
    """``(relpath, vid)`` per line ``IMAGE_ID VID`` of a ``train_test_split`` list."""
    list_path = dataset_root / "train_test_split" / list_name
    rows = [
        (f"image/{fields[0]}.jpg", parse_int(fields[1], list_path, f"vehicle id of {fields[0]}"))
        for fields in read_list(list_path, columns=2)
    ]
    check_files_exist(dataset_root, (relpath for relpath, _ in rows), list_path)
    return rows


def parse_vehicleid(root: str | Path, test_size: int = 800, seed: int = 0) -> Manifest:
    """Parse VehicleID with one of its standard test lists.

    Train is ``train_list.txt`` (all images, camid 0). The test list ``test_list_<size>.txt`` is
    split as CLIP-ReID and TransReID do (fast-reid likewise): for each test vehicle one image,
    drawn at random, is the gallery and the others are queries. The draw here is seeded
    (``seed``; vehicles in increasing vid order, images in list order), so a manifest is
    reproducible; the evaluation engine repeats it over 10 random gallery draws and averages,
    as the protocol asks. VehicleID has no camera labels: as in CLIP-ReID, queries get camid 0
    and gallery images camid 1, so that the Market protocol's same-camera filtering keeps every
    match (fast-reid reaches the same effect with one camera per image).

    Args:
        root: ``VehicleID_V1.0`` itself, or a folder holding it.
        test_size: 800 (small), 1600 (medium) or 2400 (large).
        seed: Seed of the gallery draw.

    Returns:
        The manifest (DESIGN 3.1) with its resolved dataset folder.

    Raises:
        ReIDError: Unknown test size.
        DatasetLayoutError: No VehicleID folder under ``root``.
        DataFileError: A list file is missing or malformed, or lists missing images.
    """
    if test_size not in TEST_SIZES:
        raise ReIDError(
            f"unknown vehicleid test_size {test_size!r}; valid: {', '.join(map(str, TEST_SIZES))}"
        )
    dataset_root, _ = resolve_layout("vehicleid", root, [VEHICLEID_LAYOUT])
    train_rows = _read_vehicle_list(dataset_root, "train_list.txt")
    test_rows = _read_vehicle_list(dataset_root, f"test_list_{test_size}.txt")

    records = [
        ReIDRecord(relpath, vid, QUERY_CAMID, "train", "vehicleid") for relpath, vid in train_rows
    ]
    by_vehicle: dict[int, list[str]] = {}
    for relpath, vid in test_rows:
        by_vehicle.setdefault(vid, []).append(relpath)
    generator = random.Random(seed)
    gallery, query = [], []
    for vid in sorted(by_vehicle):
        relpaths = by_vehicle[vid]
        chosen = generator.randrange(len(relpaths))
        gallery.append(ReIDRecord(relpaths[chosen], vid, GALLERY_CAMID, "gallery", "vehicleid"))
        query += [
            ReIDRecord(relpath, vid, QUERY_CAMID, "query", "vehicleid")
            for index, relpath in enumerate(relpaths)
            if index != chosen
        ]
    return finish_manifest(records + query + gallery, dataset_root)
