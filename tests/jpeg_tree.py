"""Tiny Market-1501-style JPEG trees for the data-loading tests (not a test module)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from vlreid.datasets.manifest import ReIDRecord, build_manifest

SPLIT_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


def write_jpeg_tree(
    root: Path,
    images_per_id: dict[int, int],
    cameras: int = 2,
    seed: int = 0,
    size: tuple[int, int] = (32, 64),
) -> pd.DataFrame:
    """Write random-colour JPEGs named like Market-1501 train crops; return their manifest.

    Args:
        root: Dataset root to create.
        images_per_id: Number of train images of each pid.
        cameras: Cameras the images of an identity cycle through.
        seed: Seed of the pixel noise.
        size: ``(width, height)`` of each JPEG.

    Returns:
        The manifest (train rows, plus one query and one gallery row of the first pid).
    """
    rng = np.random.default_rng(seed)
    records = []
    for split, folder in SPLIT_FOLDERS.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        counts = images_per_id if split == "train" else {min(images_per_id): 1}
        for pid, count in counts.items():
            for index in range(count):
                camid = index % cameras if split != "query" else 0
                name = f"{pid:04d}_c{camid + 1}s1_{index:06d}_00.jpg"
                base = rng.integers(0, 256, size=3)
                noise = rng.integers(-40, 40, size=(size[1], size[0], 3))
                pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(root / folder / name, quality=90)
                records.append(ReIDRecord(f"{folder}/{name}", pid, camid, split, "market1501"))
    return build_manifest(records)
