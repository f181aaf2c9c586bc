"""Skeleton benchmark trees (empty files) built from the real name lists in ``../shared/data``.

Creating ~300k files is the slow part of the parser tests: files are created with ``os.open``
relative to an open folder descriptor, and each tree is built once per test module.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

MARKET_FOLDERS = ("bounding_box_train", "query", "bounding_box_test")


def read_lines(path: Path) -> list[str]:
    """Non-empty lines of a text file, stripped (LF or CRLF)."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def touch_all(directory: Path, names: Iterable[str]) -> int:
    """Create empty files ``directory / name`` (``name`` may hold one ``/``); return the count."""
    by_folder: dict[str, list[str]] = {}
    for name in names:
        folder, _, basename = name.rpartition("/")
        by_folder.setdefault(folder, []).append(basename)
    count = 0
    for folder, basenames in by_folder.items():
        target = directory / folder
        target.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(target, os.O_RDONLY)
        try:
            for basename in basenames:
                os.close(os.open(basename, os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=descriptor))
                count += 1
        finally:
            os.close(descriptor)
    return count


def build_market_style(dataset_folder: Path, names_by_folder: dict[str, list[str]]) -> Path:
    """Split folders of empty files; returns ``dataset_folder``."""
    for folder, names in names_by_folder.items():
        touch_all(dataset_folder / folder, names)
    return dataset_folder


def build_market1501(shared_data: Path, dataset_folder: Path) -> Path:
    """Market-1501 from ``reid-lists/market1501/names``."""
    names = shared_data / "reid-lists" / "market1501" / "names"
    return build_market_style(
        dataset_folder, {folder: read_lines(names / f"{folder}.txt") for folder in MARKET_FOLDERS}
    )


def build_dukemtmc(shared_data: Path, dataset_folder: Path) -> Path:
    """DukeMTMC-reID from ``reid-lists/dukemtmc-reid/names``."""
    names = shared_data / "reid-lists" / "dukemtmc-reid" / "names"
    return build_market_style(
        dataset_folder, {folder: read_lines(names / f"{folder}.txt") for folder in MARKET_FOLDERS}
    )


def build_occluded_duke(shared_data: Path, dataset_folder: Path) -> Path:
    """Occluded-Duke from ``reid-lists/occluded_duke/{train,query,gallery}.list``."""
    lists = shared_data / "reid-lists" / "occluded_duke"
    files = {"bounding_box_train": "train", "query": "query", "bounding_box_test": "gallery"}
    return build_market_style(
        dataset_folder,
        {folder: read_lines(lists / f"{stem}.list") for folder, stem in files.items()},
    )


def build_veri776(shared_data: Path, dataset_folder: Path) -> Path:
    """VeRi-776 from ``reid-lists/veri776/names/name_{train,query,test}.txt``."""
    names = shared_data / "reid-lists" / "veri776" / "names"
    files = {"image_train": "train", "image_query": "query", "image_test": "test"}
    return build_market_style(
        dataset_folder,
        {folder: read_lines(names / f"name_{stem}.txt") for folder, stem in files.items()},
    )


def build_msmt17(shared_data: Path, dataset_folder: Path, version: str = "V1") -> Path:
    """MSMT17 (V1 or V2 folder names) with the official lists copied beside the folders."""
    lists = shared_data / "reid-lists" / "msmt17"
    train_folder, test_folder = (
        ("train", "test")
        if version == "V1"
        else (
            "mask_train_v2",
            "mask_test_v2",
        )
    )
    dataset_folder.mkdir(parents=True, exist_ok=True)
    for stem, folder in (
        ("train", train_folder),
        ("val", train_folder),
        ("query", test_folder),
        ("gallery", test_folder),
    ):
        lines = read_lines(lists / f"list_{stem}.txt")
        touch_all(dataset_folder / folder, (line.split()[0] for line in lines))
        (dataset_folder / f"list_{stem}.txt").write_text("\n".join(lines) + "\n")
    return dataset_folder


CUHK03_SPLITS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


def cuhk03_rows(shared_data: Path, variant: str, split: str) -> list[tuple[str, int, int]]:
    """``(name, label, camId)`` rows of ``reid-lists/cuhk03-np/names/<variant>_<split>.txt``."""
    path = shared_data / "reid-lists" / "cuhk03-np" / "names" / f"{variant}_{split}.txt"
    rows = []
    for line in read_lines(path):
        name, label, camera = line.split()
        rows.append((name, int(label), int(camera)))
    return rows


def zhong_name(name: str, label: int, camera: int) -> str:
    """The Market-style name of Zhong's CUHK03-NP release for a torchreid-style name.

    ``1_001_1_01.png`` with label 1, camera 1 -> ``0001_c1_01.png``: pid and view lead, the
    image index keeps names unique.
    """
    image = name.rsplit(".", 1)[0].split("_")[3]
    return f"{label:04d}_c{camera}_{image}.png"


def build_cuhk03_np(shared_data: Path, variant_folder: Path, variant: str) -> Path:
    """Zhong's layout: ``<variant>/{bounding_box_train,query,bounding_box_test}/PPPP_cC_N.png``."""
    for split, folder in CUHK03_SPLITS.items():
        names = [zhong_name(*row) for row in cuhk03_rows(shared_data, variant, split)]
        touch_all(variant_folder / folder, names)
    return variant_folder


def build_cuhk03_torchreid(shared_data: Path, cuhk03_folder: Path, variant: str) -> Path:
    """torchreid's layout: ``images_<variant>/`` plus ``cuhk03_new_protocol_config_<variant>.mat``.

    The config is written with scipy as the official one is laid out: ``filelist`` (cell array
    of basenames), ``labels``, ``camId`` and 1-based ``train_idx``/``query_idx``/``gallery_idx``
    (column vectors).
    """
    import numpy as np
    from scipy.io import savemat

    names: list[str] = []
    labels: list[int] = []
    cameras: list[int] = []
    indices: dict[str, list[int]] = {}
    for split in CUHK03_SPLITS:
        rows = cuhk03_rows(shared_data, variant, split)
        indices[split] = list(range(len(names) + 1, len(names) + len(rows) + 1))
        for name, label, camera in rows:
            names.append(name)
            labels.append(label)
            cameras.append(camera)
    touch_all(cuhk03_folder / f"images_{variant}", names)
    filelist = np.empty((len(names), 1), dtype=object)
    filelist[:, 0] = names
    savemat(
        cuhk03_folder / f"cuhk03_new_protocol_config_{variant}.mat",
        {
            "filelist": filelist,
            "labels": np.asarray(labels, dtype=np.float64).reshape(-1, 1),
            "camId": np.asarray(cameras, dtype=np.float64).reshape(-1, 1),
            **{
                f"{split}_idx": np.asarray(split_indices, dtype=np.float64).reshape(-1, 1)
                for split, split_indices in indices.items()
            },
        },
    )
    return cuhk03_folder


@contextmanager
def scratch_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A folder for large skeleton trees, removed afterwards.

    Uses ``/dev/shm`` (memory) when writable: creating 36k empty files there took 0.5 s against
    1 to 3 s in ``/tmp`` on the shared CI machine. Falls back to pytest's temporary folder.
    """
    memory = Path("/dev/shm")
    if memory.is_dir() and os.access(memory, os.W_OK):
        folder = Path(tempfile.mkdtemp(prefix=f"reid-test-{name}-", dir=memory))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    else:
        yield tmp_path_factory.mktemp(name)


SMALL_MSMT17_LISTS = {
    # list name -> (relative path under the image folder, label); train pids 2 and 7, test
    # labels restart at 0 as in the official lists.
    "list_train.txt": [
        ("0007/0007_001_03_0303morning_0001_0.jpg", 7),
        ("0007/0007_002_05_0303morning_0002_0.jpg", 7),
        ("0002/0002_003_15_0303noon_0003_1.jpg", 2),
    ],
    "list_val.txt": [("0002/0002_004_01_0303noon_0004_1.jpg", 2)],
    "list_query.txt": [("0000/0000_005_02_0113noon_0005_0.jpg", 0)],
    "list_gallery.txt": [
        ("0000/0000_006_04_0113noon_0006_0.jpg", 0),
        ("0001/0001_007_04_0113noon_0007_0.jpg", 1),
    ],
}


def write_small_msmt17(dataset_folder: Path, version: str = "V1", newline: str = "\n") -> Path:
    """A 7-image MSMT17 tree (:data:`SMALL_MSMT17_LISTS`) in the V1 or V2 folder names."""
    train_folder, test_folder = (
        ("train", "test")
        if version == "V1"
        else (
            "mask_train_v2",
            "mask_test_v2",
        )
    )
    for list_name, rows in SMALL_MSMT17_LISTS.items():
        folder = train_folder if list_name in ("list_train.txt", "list_val.txt") else test_folder
        touch_all(dataset_folder / folder, (relpath for relpath, _ in rows))
        text = newline.join(f"{relpath} {label}" for relpath, label in rows) + newline
        (dataset_folder / list_name).write_bytes(text.encode())
    return dataset_folder
