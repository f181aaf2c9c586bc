"""Training and evaluation loaders: one exact epoch, reproducible seeding, eval order."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import torch
from PIL import Image

from jpeg_tree import write_jpeg_tree
from vlreid.config import DataConfig
from vlreid.datasets.load_check import run_train_epochs
from vlreid.datasets.loaders import (
    build_eval_loader,
    build_train_loader,
    set_epoch,
)
from vlreid.datasets.transforms import Preprocessing, build_eval_transform
from vlreid.errors import ReIDError

PREPROCESSING = Preprocessing.clip(size=(32, 16))
IMAGES_PER_ID = dict(zip(range(1, 13), [6, 5, 4, 2, 7, 4, 3, 8, 4, 5, 1, 4], strict=True))


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    root = tmp_path_factory.mktemp("loaders") / "market"
    return root, write_jpeg_tree(root, IMAGES_PER_ID, cameras=3)


def _config(**changes: object) -> tuple[DataConfig, Preprocessing, int]:
    """The loaders' arguments after root: data config, preprocessing, seed."""
    values = {"batch_size": 8, "num_instances": 2, "num_workers": 0}
    return DataConfig(**{**values, **changes}), PREPROCESSING, 4  # type: ignore[arg-type]


def _epoch(loader: torch.utils.data.DataLoader, epoch: int) -> list[dict]:
    set_epoch(loader, epoch)
    return list(loader)


def test_train_loader_yields_exactly_one_epoch_of_p_by_k_batches(
    tree: tuple[Path, pd.DataFrame],
) -> None:
    root, manifest = tree
    loader = build_train_loader(manifest, root, *_config())
    chunks = sum(max(count, 2) // 2 for count in IMAGES_PER_ID.values())
    assert len(loader) == chunks // 4
    batches = _epoch(loader, 0)
    assert len(batches) == len(loader)
    train = manifest[manifest["split"] == "train"]
    for batch in batches:
        assert batch["images"].shape == (8, 3, 32, 16)
        assert batch["images"].dtype == torch.float32
        assert set(Counter(batch["pids"].tolist()).values()) == {2}
        assert len(set(batch["pids"].tolist())) == 4
        assert batch["labels"].dtype == batch["pids"].dtype == batch["camids"].dtype == torch.int64
        assert set(batch["relpaths"]) <= set(train["relpath"])
        assert "captions" not in batch
    # Labels are the manifest's train labels, row by row.
    label_of = dict(zip(train["relpath"], train["label"], strict=True))
    for batch in batches:
        assert batch["labels"].tolist() == [label_of[r] for r in batch["relpaths"]]


@pytest.mark.parametrize("workers", [0, 2])
def test_epochs_are_reproducible_for_a_seed(tree: tuple[Path, pd.DataFrame], workers: int) -> None:
    root, manifest = tree
    first = build_train_loader(manifest, root, *_config(num_workers=workers))
    second = build_train_loader(manifest, root, *_config(num_workers=workers))
    epoch_one, again = _epoch(first, 1), _epoch(second, 1)
    for left, right in zip(epoch_one, again, strict=True):
        assert left["relpaths"] == right["relpaths"]
        torch.testing.assert_close(left["images"], right["images"], rtol=0, atol=0)
    epoch_two = _epoch(first, 2)
    assert [b["relpaths"] for b in epoch_two] != [b["relpaths"] for b in epoch_one]
    # Replaying epoch 1 on the first loader (as after a resume) gives the same pixels.
    replay = _epoch(first, 1)
    torch.testing.assert_close(replay[0]["images"], epoch_one[0]["images"], rtol=0, atol=0)


def test_cached_loader_gives_the_same_batches(tree: tuple[Path, pd.DataFrame]) -> None:
    root, manifest = tree
    plain = _epoch(build_train_loader(manifest, root, *_config()), 0)
    cached = _epoch(build_train_loader(manifest, root, *_config(cache="memory")), 0)
    for left, right in zip(plain, cached, strict=True):
        torch.testing.assert_close(left["images"], right["images"], rtol=0, atol=0)


def test_eval_loader_keeps_manifest_order_without_augmentation(
    tree: tuple[Path, pd.DataFrame],
) -> None:
    root, manifest = tree
    rows = manifest.iloc[::3].reset_index(drop=True)
    loader = build_eval_loader(rows, root, *_config(eval_batch_size=5))
    batches = list(loader)
    assert [r for b in batches for r in b["relpaths"]] == rows["relpath"].tolist()
    transform = build_eval_transform(PREPROCESSING)
    with Image.open(root / rows["relpath"][6]) as image:
        expected = transform(image)
    torch.testing.assert_close(batches[1]["images"][1], expected, rtol=0, atol=0)


def test_evaluating_does_not_consume_the_global_random_state(
    tree: tuple[Path, pd.DataFrame],
) -> None:
    """An evaluation in the middle of training must not change the random draws that follow
    (methods such as svll draw their prompt masks from the global generator)."""
    root, manifest = tree
    loader = build_eval_loader(manifest, root, *_config(eval_batch_size=5))
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    for _ in loader:
        pass
    torch.testing.assert_close(torch.rand(4), expected, rtol=0, atol=0)


def test_run_train_epochs_counts_every_batch(tree: tuple[Path, pd.DataFrame]) -> None:
    root, manifest = tree
    result = run_train_epochs(manifest, root, *_config(), epochs=2, progress=False)
    loader = build_train_loader(manifest, root, *_config())
    lengths = []
    for epoch in (0, 1):  # P x K epochs may differ in length
        set_epoch(loader, epoch)
        lengths.append(len(loader))
    assert result.batches == sum(lengths)
    assert result.images == sum(lengths) * 8
    assert len(result.epoch_seconds) == 2 and result.images_per_second > 0


def test_a_manifest_without_train_rows_is_a_user_error(tree: tuple[Path, pd.DataFrame]) -> None:
    root, manifest = tree
    with pytest.raises(ReIDError, match="no train rows"):
        build_train_loader(manifest[manifest["split"] != "train"], root, *_config())


def test_workers_draw_from_distinct_seeded_streams(
    tree: tuple[Path, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without per-worker seeding, both workers would copy one generator and draw alike."""
    from vlreid.datasets import bimodal, loaders

    def draw(self: bimodal.BimodalDataset, index: int) -> torch.Tensor:
        return torch.rand((), generator=self.generator)

    monkeypatch.setattr(bimodal.BimodalDataset, "__getitem__", draw)
    monkeypatch.setattr(loaders, "collate_batch", torch.stack)
    root, manifest = tree
    draws = [
        _epoch(build_train_loader(manifest, root, *_config(num_workers=2)), 0) for _ in range(2)
    ]
    # Batch 0 comes from worker 0 and batch 1 from worker 1.
    assert not torch.equal(draws[0][0], draws[0][1])
    assert all(torch.equal(a, b) for a, b in zip(draws[0], draws[1], strict=True))


def test_cli_data_load_runs_one_epoch_and_reports_speed(
    tree: tuple[Path, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command's own behaviour, with the dataset registry replaced by the tiny tree."""
    from typer.testing import CliRunner

    import vlreid.datasets
    from vlreid.cli import app
    from vlreid.datasets.manifest import Manifest

    root, manifest = tree
    calls = []

    def fake_load_manifest(dataset: str, dataset_root: Path) -> Manifest:
        calls.append((dataset, Path(dataset_root)))
        return Manifest(manifest, root)

    monkeypatch.setattr(vlreid.datasets, "load_manifest", fake_load_manifest, raising=False)
    runner = CliRunner()
    options = ["--dataset", "market1501", "--root", str(root), "--workers", "0"]
    result = runner.invoke(
        app, ["data", "load", *options, "--batch-size", "8", "--num-instances", "2"]
    )
    assert result.exit_code == 0, result.output
    batches = len(build_train_loader(manifest, root, *_config()))
    assert f"{batches * 8} images in {batches} batches over 1 epoch(s)" in result.output
    assert "images/s" in result.output
    assert calls == [("market1501", root)]

    result = runner.invoke(app, ["data", "load", *options, "--batch-size", "6"])
    assert result.exit_code == 2
    assert "error: batch size 6 must be a positive multiple of num_instances 4" in result.output
    result = runner.invoke(app, ["data", "load", *options, "--captions", str(root / "none")])
    assert result.exit_code == 2 and "no caption shards" in result.output


def test_accelerate_prepared_loader_replays_the_same_epoch(
    tree: tuple[Path, pd.DataFrame],
) -> None:
    """accelerate re-sets the epoch at each ``iter``; set_epoch must go through its counter."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    root, manifest = tree
    try:
        prepared = Accelerator(cpu=True).prepare(build_train_loader(manifest, root, *_config()))
        prepared_epochs = [_epoch(prepared, epoch) for epoch in (1, 2)]
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    plain = build_train_loader(manifest, root, *_config())
    for epoch, batches in zip((1, 2), prepared_epochs, strict=True):
        expected = _epoch(plain, epoch)
        assert [b["relpaths"] for b in batches] == [b["relpaths"] for b in expected]
        torch.testing.assert_close(batches[0]["images"], expected[0]["images"], rtol=0, atol=0)
