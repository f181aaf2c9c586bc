"""Vehicle ReID parsers (VeRi-776, VehicleID) on skeleton trees of the real names."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from skeleton_trees import build_veri776, read_lines, scratch_folder, touch_all
from vlreid.datasets import load_manifest
from vlreid.datasets.manifest import split_statistics
from vlreid.errors import DataFileError, ReIDError

# A small train list of our own (the real one has 113,346 lines): vid 7 before vid 3 in the
# file, to check that labels follow the vid order, not the file order.
TRAIN_LIST = ["9000001 7", "9000002 7", "9000003 3", "9000004 3", "9000005 3", "9000006 12"]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory):
    with scratch_folder(tmp_path_factory, "vehicle") as folder:
        yield folder


@pytest.fixture(scope="module")
def veri_tree(shared_data: Path, scratch: Path) -> Path:
    build_veri776(shared_data, scratch / "veri" / "VeRi")
    return scratch / "veri"


@pytest.fixture(scope="module")
def test_list_800(shared_data: Path) -> list[tuple[str, int]]:
    lines = read_lines(shared_data / "reid-lists" / "vehicleid" / "test_list_800.txt")
    return [(line.split()[0], int(line.split()[1])) for line in lines]


@pytest.fixture(scope="module")
def vehicleid_tree(scratch: Path, test_list_800: list[tuple[str, int]]) -> Path:
    folder = scratch / "vehicleid" / "VehicleID_V1.0"
    names = [f"{image}.jpg" for image, _ in test_list_800]
    touch_all(folder / "image", names + [f"{line.split()[0]}.jpg" for line in TRAIN_LIST])
    split_folder = folder / "train_test_split"
    split_folder.mkdir()
    # CRLF, as lists edited on Windows often are.
    (split_folder / "train_list.txt").write_bytes("\r\n".join(TRAIN_LIST).encode() + b"\r\n")
    lines = [f"{image} {vid}" for image, vid in test_list_800]
    (split_folder / "test_list_800.txt").write_text("\n".join(lines) + "\n")
    return scratch / "vehicleid"


def test_veri776_published_statistics_from_both_roots(veri_tree: Path) -> None:
    by_archive_manifest = load_manifest("veri776", veri_tree / "VeRi")
    by_parent_manifest = load_manifest("veri776", veri_tree)
    by_archive, by_parent = by_archive_manifest.frame, by_parent_manifest.frame
    # ../shared/data/README.md: 576 / 37,778; 200 / 1,678; 200 / 11,579; 20 cameras in train,
    # 19 in query and gallery.
    assert split_statistics(by_archive) == {
        "train": {"ids": 576, "images": 37778, "cameras": 20},
        "query": {"ids": 200, "images": 1678, "cameras": 19},
        "gallery": {"ids": 200, "images": 11579, "cameras": 19},
    }
    pd.testing.assert_frame_equal(by_archive, by_parent)
    assert str(by_parent_manifest.root) == str(veri_tree / "VeRi")
    assert (by_archive["camid"].min(), by_archive["camid"].max()) == (0, 19)
    row = by_archive[by_archive["relpath"] == "image_train/0001_c001_00016450_0.jpg"]
    assert row[["pid", "camid", "label"]].values.tolist() == [[1, 0, 0]]


def test_vehicleid_800_split(vehicleid_tree: Path, test_list_800: list[tuple[str, int]]) -> None:
    by_archive = load_manifest("vehicleid", vehicleid_tree / "VehicleID_V1.0", test_size=800).frame
    by_parent = load_manifest("vehicleid", vehicleid_tree).frame
    pd.testing.assert_frame_equal(by_archive, by_parent)
    vehicles = {vid for _, vid in test_list_800}
    assert (len(vehicles), len(test_list_800)) == (800, 6493)  # published small test set
    # Every test vehicle of the list has at least 2 images, so all 800 are also queries.
    assert split_statistics(by_archive) == {
        "train": {"ids": 3, "images": 6, "cameras": 1},
        "query": {"ids": 800, "images": 6493 - 800, "cameras": 1},
        "gallery": {"ids": 800, "images": 800, "cameras": 1},
    }
    query = by_archive[by_archive["split"] == "query"]
    gallery = by_archive[by_archive["split"] == "gallery"]
    assert set(query["camid"]) == {0} and set(gallery["camid"]) == {1}
    assert gallery["pid"].is_unique
    listed = {f"image/{image}.jpg" for image, _ in test_list_800}
    assert set(query["relpath"]) | set(gallery["relpath"]) == listed
    train = by_archive[by_archive["split"] == "train"]
    assert dict(zip(train["pid"], train["label"], strict=True)) == {3: 0, 7: 1, 12: 2}


def test_vehicleid_gallery_draw_is_seeded(vehicleid_tree: Path) -> None:
    first = load_manifest("vehicleid", vehicleid_tree, seed=0).frame
    again = load_manifest("vehicleid", vehicleid_tree, seed=0).frame
    other = load_manifest("vehicleid", vehicleid_tree, seed=1).frame
    pd.testing.assert_frame_equal(first, again)
    galleries = [set(m.loc[m["split"] == "gallery", "relpath"]) for m in (first, other)]
    assert galleries[0] != galleries[1]


def test_vehicleid_bad_test_size_and_missing_list(vehicleid_tree: Path) -> None:
    with pytest.raises(ReIDError, match="800, 1600, 2400"):
        load_manifest("vehicleid", vehicleid_tree, test_size=500)
    with pytest.raises(DataFileError, match="test_list_1600.txt"):
        load_manifest("vehicleid", vehicleid_tree, test_size=1600)


def test_veri776_same_camera_filter_equals_official_junk_index(
    shared_data: Path, veri_tree: Path
) -> None:
    """The Market protocol's same-pid same-camera filter reproduces VeRi's jk_index.txt."""
    manifest = load_manifest("veri776", veri_tree).frame
    lists = shared_data / "reid-lists" / "veri776"
    test_names = read_lines(lists / "names" / "name_test.txt")
    position = {f"image_test/{name}": index + 1 for index, name in enumerate(test_names)}
    gallery = manifest[manifest["split"] == "gallery"]
    by_pid_camera: dict[tuple[int, int], set[int]] = {}
    for relpath, pid, camid in zip(
        gallery["relpath"], gallery["pid"], gallery["camid"], strict=True
    ):
        by_pid_camera.setdefault((pid, camid), set()).add(position[relpath])
    query = manifest[manifest["split"] == "query"].set_index("relpath")
    query_names = read_lines(lists / "names" / "name_query.txt")
    junk_lines = (lists / "original" / "jk_index.txt").read_text().splitlines()
    for name, junk in zip(query_names, junk_lines, strict=True):
        row = query.loc[f"image_query/{name}"]
        expected = {int(index) for index in junk.split()}
        assert by_pid_camera.get((row["pid"], row["camid"]), set()) == expected
