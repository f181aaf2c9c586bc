"""The bi-modal dataset: caption join, missing captions, unreadable images, the packed cache."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from jpeg_tree import write_jpeg_tree
from vlreid.datasets.bimodal import FALLBACK_CAPTION, BimodalDataset, collate_batch
from vlreid.datasets.transforms import Preprocessing, build_eval_transform, build_train_transform
from vlreid.errors import DataFileError, ReIDError

PREPROCESSING = Preprocessing.clip(size=(64, 32))


@pytest.fixture()
def tree(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    root = tmp_path / "market"
    manifest = write_jpeg_tree(root, {1: 3, 2: 2, 5: 4})
    return root, manifest[manifest["split"] == "train"].reset_index(drop=True)


def _write_shards(folder: Path, rows: list[dict]) -> None:
    """Two shards plus the files readers must ignore (a temporary shard, the run manifest)."""
    folder.mkdir(parents=True)
    half = len(rows) // 2
    pd.DataFrame(rows[:half]).to_parquet(folder / "part-00000.parquet")
    pd.DataFrame(rows[half:]).to_parquet(folder / "part-00001.parquet")
    bogus = [{"relpath": rows[0]["relpath"], "caption": "stale", "status": "ok"}]
    pd.DataFrame(bogus).to_parquet(folder / ".part-00002.parquet.tmp")
    (folder / "_manifest.json").write_text(json.dumps({"model": "tiny"}))


def _caption_rows(manifest: pd.DataFrame) -> list[dict]:
    return [
        {"relpath": relpath, "caption": f"a person {pid} seen in {relpath}", "status": "ok"}
        for relpath, pid in zip(manifest["relpath"], manifest["pid"], strict=True)
    ]


def test_captions_are_joined_by_relpath(tree: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    root, manifest = tree
    rows = _caption_rows(manifest)[::-1]  # shard order differs from manifest order
    _write_shards(tmp_path / "captions", rows)
    dataset = BimodalDataset(
        manifest, root, build_eval_transform(PREPROCESSING), captions_dir=tmp_path / "captions"
    )
    assert len(dataset) == len(manifest)
    batch = collate_batch([dataset[i] for i in range(len(dataset))])
    assert batch["captions"] == [
        f"a person {pid} seen in {relpath}"
        for relpath, pid in zip(manifest["relpath"], manifest["pid"], strict=True)
    ]
    assert batch["images"].shape == (len(manifest), 3, 64, 32)
    assert batch["images"].dtype == torch.float32
    assert batch["labels"].tolist() == manifest["label"].tolist()
    assert batch["pids"].tolist() == manifest["pid"].tolist()
    assert batch["camids"].tolist() == manifest["camid"].tolist()
    assert batch["relpaths"] == manifest["relpath"].tolist()
    assert all(t.dtype == torch.int64 for t in (batch["labels"], batch["pids"], batch["camids"]))


def test_missing_captions_error_lists_count_and_examples(
    tree: tuple[Path, pd.DataFrame], tmp_path: Path
) -> None:
    root, manifest = tree
    rows = _caption_rows(manifest)
    dropped = rows.pop(2)["relpath"]
    reason = "UnidentifiedImageError: cannot identify image file"
    rows = [{**row, "error": ""} for row in rows]  # every shard has the column, as written
    rows[4] = {**rows[4], "caption": None, "status": "image_error", "error": reason}
    errored = rows[4]["relpath"]
    _write_shards(tmp_path / "captions", rows)
    transform = build_eval_transform(PREPROCESSING)
    with pytest.raises(ReIDError, match=f"2 of {len(manifest)} images") as raised:
        BimodalDataset(manifest, root, transform, captions_dir=tmp_path / "captions")
    assert dropped in str(raised.value) and errored in str(raised.value)
    assert "missing_captions='fallback'" in str(raised.value)
    # which of them could not be read, and how to caption them (the same reid caption --out)
    assert f"; 1 of them could not be read when captioned (image_error: {errored}: {reason})" in (
        str(raised.value)
    )
    assert "reid caption with the same --out captions the missing and unreadable ones" in str(
        raised.value
    )

    dataset = BimodalDataset(
        manifest,
        root,
        transform,
        captions_dir=tmp_path / "captions",
        missing_captions="fallback",
    )
    by_relpath = dict(zip(dataset.relpaths, dataset.captions or [], strict=True))
    assert by_relpath[dropped] == FALLBACK_CAPTION == by_relpath[errored]
    kept = [r for r in dataset.relpaths if r not in (dropped, errored)]
    assert all(by_relpath[r].startswith("a person") for r in kept)


def test_caption_folder_errors(tree: tuple[Path, pd.DataFrame], tmp_path: Path) -> None:
    root, manifest = tree
    transform = build_eval_transform(PREPROCESSING)
    with pytest.raises(DataFileError, match="no caption shards"):
        BimodalDataset(manifest, root, transform, captions_dir=tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    pd.DataFrame({"relpath": ["x"]}).to_parquet(tmp_path / "bad" / "part-00000.parquet")
    with pytest.raises(DataFileError, match=r"lack column\(s\) \['caption'\]"):
        BimodalDataset(manifest, root, transform, captions_dir=tmp_path / "bad")
    with pytest.raises(ReIDError, match="unknown missing_captions"):
        BimodalDataset(
            manifest, root, transform, captions_dir=tmp_path / "bad", missing_captions="skip"
        )


def test_batches_without_captions_have_no_caption_key(tree: tuple[Path, pd.DataFrame]) -> None:
    root, manifest = tree
    dataset = BimodalDataset(manifest, root, build_eval_transform(PREPROCESSING))
    assert "captions" not in collate_batch([dataset[0], dataset[1]])


def test_unreadable_image_names_its_path(tree: tuple[Path, pd.DataFrame]) -> None:
    root, manifest = tree
    broken = root / manifest["relpath"][3]
    broken.write_bytes(b"not a jpeg")
    dataset = BimodalDataset(manifest, root, build_eval_transform(PREPROCESSING))
    dataset[0]  # other images still load
    with pytest.raises(DataFileError, match=f"cannot read image {broken}"):
        dataset[3]
    with pytest.raises(DataFileError, match=f"cannot read image {broken}"):
        BimodalDataset(manifest, root, build_eval_transform(PREPROCESSING), cache="memory")
    broken.unlink()
    with pytest.raises(DataFileError, match=f"cannot read image {broken}"):
        dataset[3]


def test_memory_cache_equals_decoding_every_time(tree: tuple[Path, pd.DataFrame]) -> None:
    root, manifest = tree
    # A grayscale JPEG exercises the RGB conversion on both paths.
    Image.open(root / manifest["relpath"][0]).convert("L").save(root / manifest["relpath"][0])
    for transform in (build_eval_transform(PREPROCESSING), build_train_transform(PREPROCESSING)):
        plain = BimodalDataset(manifest, root, transform, seed=3)
        cached = BimodalDataset(manifest, root, transform, cache="memory", seed=3)
        assert cached.cache is not None and cached.cache.pixels.shape == (len(manifest), 3, 64, 32)
        for index in range(len(manifest)):
            torch.testing.assert_close(
                cached[index]["image"], plain[index]["image"], rtol=0, atol=0
            )
    with pytest.raises(ReIDError, match="unknown cache"):
        BimodalDataset(manifest, root, build_eval_transform(PREPROCESSING), cache="disk")
