"""Parser edge cases on small hand-made trees: names, roots, lists, options, errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from skeleton_trees import touch_all, write_small_msmt17
from vlreid.datasets import PARSERS, Manifest, dataset_options, load_manifest
from vlreid.errors import DataFileError, DatasetLayoutError, ReIDError


def rows(manifest: Manifest) -> set[tuple[str, str, int, int, int]]:
    """``(split, relpath, pid, camid, label)`` of every manifest row."""
    columns = ["split", "relpath", "pid", "camid", "label"]
    return {tuple(row) for row in manifest.frame[columns].itertuples(index=False)}


def write_market(folder: Path, names: dict[str, list[str]]) -> Path:
    for split_folder in ("bounding_box_train", "query", "bounding_box_test"):
        (folder / split_folder).mkdir(parents=True, exist_ok=True)
        touch_all(folder / split_folder, names.get(split_folder, []))
    return folder


def test_market_rules_under_a_parent_whose_name_looks_like_a_pid(tmp_path: Path) -> None:
    # Parsing the full path (as torchreid's regex search does) would read pid 1, camera 1 from
    # the parent "0001_c1"; only the basename counts.
    parent = tmp_path / "0001_c1"
    write_market(
        parent / "Market-1501",
        {
            "bounding_box_train": [
                "0005_c2s1_000001_00.jpg",
                "0003_c6s1_000002_00.jpg",
                "0005_c1s1_000003_00.jpg.jpg",
                "._0009_c1s1_000009_00.jpg",  # macOS resource fork: ignored
                "Thumbs.db",
            ],
            "query": ["0003_c1s1_000004_00.jpg", "-1_c1s1_000005_00.jpg"],
            "bounding_box_test": [
                "0003_c2s1_000006_00.jpg",
                "0000_c3s1_000007_00.jpg",
                "-1_c4s1_000008_00.jpg",
            ],
        },
    )
    manifest = load_manifest("market1501", parent)
    assert str(manifest.root) == str(parent / "Market-1501")
    assert rows(manifest) == {
        ("train", "bounding_box_train/0003_c6s1_000002_00.jpg", 3, 5, 0),
        ("train", "bounding_box_train/0005_c1s1_000003_00.jpg.jpg", 5, 0, 1),
        ("train", "bounding_box_train/0005_c2s1_000001_00.jpg", 5, 1, 1),
        ("query", "query/0003_c1s1_000004_00.jpg", 3, 0, -1),
        ("gallery", "bounding_box_test/0000_c3s1_000007_00.jpg", 0, 2, -1),
        ("gallery", "bounding_box_test/0003_c2s1_000006_00.jpg", 3, 1, -1),
    }


def test_manifest_carries_its_root_and_selects_splits(tmp_path: Path) -> None:
    write_market(
        tmp_path / "Market-1501",
        {
            "bounding_box_train": ["0005_c2s1_000001_00.jpg", "0003_c6s1_000002_00.jpg"],
            "query": ["0003_c1s1_000004_00.jpg"],
            "bounding_box_test": ["0003_c2s1_000006_00.jpg", "0000_c3s1_000007_00.jpg"],
        },
    )
    manifest = load_manifest("market1501", tmp_path)
    assert manifest.root == tmp_path / "Market-1501"
    assert all((manifest.root / relpath).is_file() for relpath in manifest.frame["relpath"])
    assert len(manifest) == len(manifest.frame) == 5
    gallery = manifest.split_rows("gallery")
    assert gallery["relpath"].tolist() == [
        "bounding_box_test/0000_c3s1_000007_00.jpg",
        "bounding_box_test/0003_c2s1_000006_00.jpg",
    ]
    assert gallery.index.tolist() == [0, 1]
    assert manifest.frame.attrs == {}  # the root is a field, not DataFrame.attrs
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.root = tmp_path  # type: ignore[misc]


def test_market_bad_file_name_and_camera_name_the_file(tmp_path: Path) -> None:
    write_market(tmp_path, {"bounding_box_train": ["img_0001.jpg"]})
    with pytest.raises(DataFileError, match="img_0001.jpg.*PID_cCAMERA"):
        load_manifest("market1501", tmp_path)
    (tmp_path / "bounding_box_train" / "img_0001.jpg").unlink()
    touch_all(tmp_path / "query", ["0002_c7s1_000001_00.jpg"])
    with pytest.raises(DataFileError, match=r"0002_c7s1_000001_00.jpg: camera 7 outside 1..6"):
        load_manifest("market1501", tmp_path)


def test_synthetic_root_is_the_folder_itself_and_cameras_are_unbounded(tmp_path: Path) -> None:
    out = write_market(
        tmp_path / "synth",
        {
            "bounding_box_train": ["0001_c9s1_000001_01.jpg", "0001_c1s1_000002_01.jpg"],
            "query": ["0002_c8s1_000003_01.jpg"],
            "bounding_box_test": ["0002_c1s1_000004_01.jpg"],
        },
    )
    (out / "attributes.parquet").touch()
    manifest = load_manifest("synthetic", out).frame
    assert set(manifest["dataset"]) == {"synthetic"}
    assert sorted(manifest["camid"]) == [0, 0, 7, 8]
    with pytest.raises(DatasetLayoutError):
        load_manifest("synthetic", tmp_path)


def test_bad_root_error_names_root_dataset_paths_and_tree(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetLayoutError) as caught:
        load_manifest("market1501", missing)
    message = str(caught.value)
    assert "\n" not in message
    assert "no market1501 dataset under" in message and "does not exist" in message
    for tried in (missing, missing / "Market-1501-v15.09.15", missing / "Market-1501"):
        assert str(tried) in message
    assert "Market-1501-v15.09.15/{bounding_box_train,query,bounding_box_test}/" in message

    partial = tmp_path / "partial"
    (partial / "Market-1501" / "bounding_box_train").mkdir(parents=True)
    (partial / "Market-1501" / "query").mkdir()
    with pytest.raises(
        DatasetLayoutError,
        match=r"matches no known layout.*closest: .*"
        r"Market-1501 lacks bounding_box_test",
    ):
        load_manifest("market1501", partial)


def test_msmt17_bad_root_lists_both_versions(tmp_path: Path) -> None:
    with pytest.raises(DatasetLayoutError) as caught:
        load_manifest("msmt17", tmp_path)
    message = str(caught.value)
    assert (
        "MSMT17_V1/{train,test}/" in message
        and "MSMT17_V2/{mask_train_v2,mask_test_v2}/" in message
    )
    assert str(tmp_path / "MSMT17_V2") in message


@pytest.mark.parametrize("version", ["V1", "V2"])
def test_msmt17_crlf_lists_pid_offset_and_train_val(tmp_path: Path, version: str) -> None:
    parent = tmp_path / "0001_c1"
    write_small_msmt17(parent / f"MSMT17_{version}", version, newline="\r\n")
    train_folder, test_folder = (
        ("train", "test")
        if version == "V1"
        else (
            "mask_train_v2",
            "mask_test_v2",
        )
    )
    manifest = load_manifest("msmt17", parent)
    # Train pids 2 and 7 -> offset 8: test labels 0 and 1 become pids 8 and 9.
    assert rows(manifest) == {
        ("train", f"{train_folder}/0007/0007_001_03_0303morning_0001_0.jpg", 7, 2, 1),
        ("train", f"{train_folder}/0007/0007_002_05_0303morning_0002_0.jpg", 7, 4, 1),
        ("train", f"{train_folder}/0002/0002_003_15_0303noon_0003_1.jpg", 2, 14, 0),
        ("query", f"{test_folder}/0000/0000_005_02_0113noon_0005_0.jpg", 8, 1, -1),
        ("gallery", f"{test_folder}/0000/0000_006_04_0113noon_0006_0.jpg", 8, 3, -1),
        ("gallery", f"{test_folder}/0001/0001_007_04_0113noon_0007_0.jpg", 9, 3, -1),
    }
    with_val = load_manifest("msmt17", parent, train_val=True)
    assert rows(with_val) - rows(manifest) == {
        ("train", f"{train_folder}/0002/0002_004_01_0303noon_0004_1.jpg", 2, 0, 0)
    }


def test_msmt17_missing_list_and_missing_image(tmp_path: Path) -> None:
    folder = write_small_msmt17(tmp_path / "MSMT17_V1")
    (folder / "list_val.txt").unlink()
    assert len(load_manifest("msmt17", tmp_path)) == 6  # the val list is only read on demand
    with pytest.raises(DataFileError, match=r"list file not found: .*list_val.txt"):
        load_manifest("msmt17", tmp_path, train_val=True)
    (folder / "test" / "0001" / "0001_007_04_0113noon_0007_0.jpg").unlink()
    with pytest.raises(DataFileError, match=r"1 images listed in .*list_gallery.txt are missing"):
        load_manifest("msmt17", tmp_path)
    (folder / "list_query.txt").write_text("0000/0000_005_02_0113noon_0005_0.jpg\n")
    with pytest.raises(DataFileError, match=r"list_query.txt:1: expected 2 fields"):
        load_manifest("msmt17", tmp_path)


def test_cuhk03_variant_checks(tmp_path: Path) -> None:
    labeled = write_market(
        tmp_path / "cuhk03-np" / "labeled",
        {
            "bounding_box_train": ["0001_c1_1.png", "0001_c2_6.png"],
            "query": ["0003_c1_1.png"],
            "bounding_box_test": ["0003_c2_7.png"],
        },
    )
    assert len(load_manifest("cuhk03", labeled, variant="labeled")) == 4
    with pytest.raises(DatasetLayoutError, match="holds the labeled boxes but variant=detected"):
        load_manifest("cuhk03", labeled, variant="detected")
    with pytest.raises(DatasetLayoutError, match="cuhk03-np/detected"):
        load_manifest("cuhk03", tmp_path, variant="detected")
    with pytest.raises(ReIDError, match="labeled, detected"):
        load_manifest("cuhk03", tmp_path, variant="both")


def test_registry_names_and_options(tmp_path: Path) -> None:
    assert set(PARSERS) == {
        "market1501",
        "msmt17",
        "dukemtmc",
        "occluded_duke",
        "cuhk03",
        "veri776",
        "vehicleid",
        "synthetic",
    }
    assert dataset_options("vehicleid") == {"test_size": 800, "seed": 0}
    with pytest.raises(ReIDError, match="unknown dataset 'market'; valid: market1501, msmt17"):
        load_manifest("market", tmp_path)
    with pytest.raises(ReIDError, match="unknown option.*variant.*market1501; valid: none"):
        load_manifest("market1501", tmp_path, variant="labeled")
    with pytest.raises(ReIDError, match="valid: train_val"):
        load_manifest("msmt17", tmp_path, trainval=True)
