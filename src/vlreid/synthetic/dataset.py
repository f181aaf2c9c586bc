"""The procedural pedestrian dataset behind ``reid data synth``: Market-1501 layout, known labels.

:func:`make_synthetic_dataset` writes::

    OUT/bounding_box_train/PPPP_cCs1_FFFFFF_01.jpg   about half of the identities
    OUT/query/...                                     the other half: query_per_camera per camera
    OUT/bounding_box_test/...                         the rest of their images (+ 0000 distractors)
    OUT/attributes.parquet                            one row per identity
    OUT/synthetic.json                                the arguments and the cameras

File names follow Market-1501 (pid on 4 digits from 0001, camera 1-based, sequence 1, frame,
box index), so the ``synthetic`` parser reads the folder with the Market-1501 rules.

``attributes.parquet`` columns: ``pid`` (int64); the caption attributes
:data:`~vlreid.synthetic.person.ATTRIBUTE_COLUMNS` (one string column per
:data:`vlreid.attributes.PERSON_FIELDS` key, values exactly from the vocabulary); ``split``
(``train`` or ``test``); then the identity traits
:data:`~vlreid.synthetic.person.TRAIT_COLUMNS` (colours as ``#rrggbb``, ``height``,
``build``, ``pattern``...), which are not caption fields. Distractors have no row.

Identities are drawn in groups that share one attribute set (``ids_per_attribute_set``), so that
attributes alone never identify a person; traits (skin, height, build, shades, pattern, trouser
detail, soles) do. Each identity appears in ``min_cameras`` to ``cameras`` cameras, and cameras
differ in scene, light, scale, preferred viewpoint, occlusion and noise
(:mod:`vlreid.synthetic.camera`). Every image is a pure function of the arguments and
its (pid, camera, index): the output is byte-identical for the same arguments.

To render images outside a dataset, use the renderer directly (see :mod:`vlreid.synthetic`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from vlreid.errors import ReIDError
from vlreid.synthetic.camera import CameraSpec, make_cameras
from vlreid.synthetic.person import (
    ATTRIBUTE_COLUMNS,
    TRAIT_COLUMNS,
    PersonSpec,
    sample_attributes,
    sample_person,
)
from vlreid.synthetic.renderer import PedestrianRenderer

logger = logging.getLogger(__name__)

SPLIT_FOLDERS: dict[str, str] = {
    "train": "bounding_box_train",
    "query": "query",
    "gallery": "bounding_box_test",
}
"""Split name -> Market-1501 folder name."""

ATTRIBUTES_FILE = "attributes.parquet"
"""Per-identity attribute and trait table written beside the split folders."""

_SAME_VIEW_PROBABILITY = 0.7
"""Chance that an image keeps its tracklet's viewpoint (people walk one way past a camera)."""


@dataclass(frozen=True)
class SyntheticSummary:
    """What :func:`make_synthetic_dataset` wrote.

    Attributes:
        root: The dataset root.
        train_ids: Identities of the train split.
        test_ids: Identities of query and gallery.
        train_images: Images in ``bounding_box_train``.
        query_images: Images in ``query``.
        gallery_images: Images in ``bounding_box_test``, distractors included.
        distractor_images: Gallery images with pid 0000.
        cameras: Number of cameras.
        seconds: Wall-clock time of the generation.
    """

    root: Path
    train_ids: int
    test_ids: int
    train_images: int
    query_images: int
    gallery_images: int
    distractor_images: int
    cameras: int
    seconds: float


def _validate(
    ids: int,
    cameras: int,
    min_cameras: int,
    images_per_camera: int,
    query_per_camera: int,
    distractors: int,
    ids_per_attribute_set: int,
) -> None:
    checks = [
        (2 <= ids <= 9999, f"ids must be in 2..9999 (4-digit pids), got {ids}"),
        (
            2 <= cameras <= 9,
            f"cameras must be in 2..9 (Market names hold one digit), got {cameras}",
        ),
        (2 <= min_cameras <= cameras, f"min_cameras must be in 2..{cameras}, got {min_cameras}"),
        (images_per_camera >= 1, f"images_per_camera must be >= 1, got {images_per_camera}"),
        (query_per_camera >= 1, f"query_per_camera must be >= 1, got {query_per_camera}"),
        (distractors >= 0, f"distractors must be >= 0, got {distractors}"),
        (
            ids_per_attribute_set >= 1,
            f"ids_per_attribute_set must be >= 1, got {ids_per_attribute_set}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ReIDError(message)


def _prepare_output(out: Path, overwrite: bool) -> None:
    """Create the split folders; refuse (or, with ``overwrite``, clear) earlier images."""
    if out.exists() and not out.is_dir():
        raise ReIDError(f"output {out} exists and is not a folder; expected a folder to write into")
    existing = [path for folder in SPLIT_FOLDERS.values() for path in (out / folder).glob("*.jpg")]
    if existing and not overwrite:
        raise ReIDError(
            f"{out} already holds {len(existing)} images (e.g. {existing[0]}); "
            "choose an empty folder or pass overwrite (--overwrite)"
        )
    for path in existing:
        path.unlink()
    for folder in SPLIT_FOLDERS.values():
        (out / folder).mkdir(parents=True, exist_ok=True)


def make_identities(
    ids: int, seed: int = 0, ids_per_attribute_set: int = 3
) -> dict[int, PersonSpec]:
    """Identities 1..ids, drawn in groups that share their vocabulary attributes.

    Args:
        ids: Number of identities.
        seed: Random seed.
        ids_per_attribute_set: Average number of identities per attribute combination.

    Returns:
        pid -> person.
    """
    rng = np.random.default_rng([seed, 1])
    set_count = math.ceil(ids / ids_per_attribute_set)
    attribute_sets = [sample_attributes(rng) for _ in range(set_count)]
    assignment = rng.permutation(np.arange(ids) % set_count)
    return {
        pid: sample_person(rng, attribute_sets[int(assignment[pid - 1])])
        for pid in range(1, ids + 1)
    }


def make_synthetic_dataset(
    out: Path,
    ids: int = 100,
    cameras: int = 6,
    seed: int = 0,
    images_per_camera: int = 4,
    query_per_camera: int = 1,
    min_cameras: int = 2,
    distractors: int = 0,
    height: int = 128,
    width: int = 64,
    ids_per_attribute_set: int = 3,
    occlusion: bool = True,
    jpeg_quality: int = 90,
    overwrite: bool = False,
) -> SyntheticSummary:
    """Write a procedural pedestrian dataset in the Market-1501 layout.

    Args:
        out: Dataset root to create.
        ids: Number of identities (pids 0001..ids); half, rounded down, go to the test split.
        cameras: Number of cameras (2 to 9).
        seed: Random seed; the same arguments give byte-identical files.
        images_per_camera: Train images (train ids) or gallery images (test ids) per identity
            and camera in which it appears.
        query_per_camera: Query images per test identity and camera, on top of the gallery.
        min_cameras: Fewest cameras an identity appears in (at least 2, so that every query
            has a gallery match in another camera).
        distractors: Gallery images of pid 0000 (people outside the identity set).
        height: Image height in pixels.
        width: Image width in pixels.
        ids_per_attribute_set: Average identities sharing one attribute combination.
        occlusion: Whether some cameras have occluders.
        jpeg_quality: JPEG quality (4:4:4 chroma, so thin colour cues survive).
        overwrite: Delete images of an earlier run in ``out`` instead of refusing.

    Returns:
        Counts of what was written and the time it took.

    Raises:
        ReIDError: On invalid arguments or a non-empty output folder without ``overwrite``.
    """
    started = time.perf_counter()
    _validate(
        ids,
        cameras,
        min_cameras,
        images_per_camera,
        query_per_camera,
        distractors,
        ids_per_attribute_set,
    )
    out = Path(out)
    _prepare_output(out, overwrite)
    people = make_identities(ids, seed, ids_per_attribute_set)
    layout_rng = np.random.default_rng([seed, 2])
    test_pids = {int(pid) + 1 for pid in layout_rng.permutation(ids)[: ids // 2]}
    camera_specs = make_cameras(cameras, seed, occlusion)
    renderer = PedestrianRenderer(height, width)
    next_frame = [int(frame) for frame in layout_rng.integers(100, 900, size=cameras)]
    counts = {"train": 0, "query": 0, "gallery": 0}
    rows = []
    for pid, person in people.items():
        split = "test" if pid in test_pids else "train"
        camera_count = int(layout_rng.integers(min_cameras, cameras + 1))
        seen_by = sorted(int(c) for c in layout_rng.choice(cameras, camera_count, replace=False))
        rows.append({"pid": pid, **person.attributes, "split": split, **_traits(person)})
        for camid in seen_by:
            camera = camera_specs[camid]
            rng = np.random.default_rng([seed, pid, camid, 3])
            tracklet_view = camera.sample_view(rng)
            queries = query_per_camera if split == "test" else 0
            for index in range(queries + images_per_camera):
                view = tracklet_view if rng.random() < _SAME_VIEW_PROBABILITY else None
                image = renderer.render(person, camera, rng, view=view)
                target = (
                    "train" if split == "train" else ("query" if index < queries else "gallery")
                )
                name = f"{pid:04d}_c{camid + 1}s1_{next_frame[camid]:06d}_01.jpg"
                next_frame[camid] += int(rng.integers(6, 40))
                _save(image, out / SPLIT_FOLDERS[target] / name, jpeg_quality)
                counts[target] += 1
    distractor_rng = np.random.default_rng([seed, 4])
    for _ in range(distractors):
        camera = camera_specs[int(distractor_rng.integers(cameras))]
        image = renderer.render(sample_person(distractor_rng), camera, distractor_rng)
        name = f"0000_c{camera.index + 1}s1_{next_frame[camera.index]:06d}_01.jpg"
        next_frame[camera.index] += int(distractor_rng.integers(6, 40))
        _save(image, out / SPLIT_FOLDERS["gallery"] / name, jpeg_quality)
    _write_tables(
        out,
        rows,
        camera_specs,
        {
            "ids": ids,
            "cameras": cameras,
            "seed": seed,
            "images_per_camera": images_per_camera,
            "query_per_camera": query_per_camera,
            "min_cameras": min_cameras,
            "distractors": distractors,
            "height": height,
            "width": width,
            "ids_per_attribute_set": ids_per_attribute_set,
            "occlusion": occlusion,
            "jpeg_quality": jpeg_quality,
        },
    )
    summary = SyntheticSummary(
        root=out,
        train_ids=ids - len(test_pids),
        test_ids=len(test_pids),
        train_images=counts["train"],
        query_images=counts["query"],
        gallery_images=counts["gallery"] + distractors,
        distractor_images=distractors,
        cameras=cameras,
        seconds=time.perf_counter() - started,
    )
    logger.debug("wrote %s in %.1f s", summary, summary.seconds)
    return summary


def _traits(person: PersonSpec) -> dict[str, object]:
    row = person.to_row()
    return {name: row[name] for name in TRAIT_COLUMNS}


def _save(image: np.ndarray, path: Path, quality: int) -> None:
    Image.fromarray(image).save(path, "JPEG", quality=quality, subsampling=0)


def _write_tables(
    out: Path,
    rows: list[dict[str, object]],
    camera_specs: list[CameraSpec],
    arguments: dict[str, object],
) -> None:
    """``attributes.parquet`` and ``synthetic.json``, each written whole then renamed."""
    frame = pd.DataFrame(rows, columns=["pid", *ATTRIBUTE_COLUMNS, "split", *TRAIT_COLUMNS])
    frame = frame.astype({"pid": "int64", **{name: "str" for name in ATTRIBUTE_COLUMNS}})
    temporary = out / f".{ATTRIBUTES_FILE}.tmp"
    frame.to_parquet(temporary, index=False)
    os.replace(temporary, out / ATTRIBUTES_FILE)
    record = {
        "generator": "vlreid.synthetic",
        "arguments": arguments,
        "attribute_columns": list(ATTRIBUTE_COLUMNS),
        "trait_columns": list(TRAIT_COLUMNS),
        "cameras": [asdict(camera) for camera in camera_specs],
    }
    (out / "synthetic.json").write_text(json.dumps(record, indent=2) + "\n")
