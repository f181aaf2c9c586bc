"""SVLL-ReID's stage-2 views: two independent draws of the training transform per decoded image.

Every image encodes its pixel coordinates (red = row + 1, green = column + 1, blue = an image
marker), so the flip and crop of an augmented image can be read back from its pixels; a naive
reference (``torch.nn.functional.pad`` then a slice) rebuilds the image from them, and the pixels
that differ from it are the erased box. The official views (``make_dataloader_svllreid.py``:
``augment_transforms``, applied twice to the PIL image in ``datasets/bases.py``) each have their
own flip, crop and an erased box of 33% to 1/3 of the area, drawn with probability 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from tiny_runs import make_tiny_dataset, tiny_config
from vlreid.config import DataConfig
from vlreid.datasets.loaders import build_train_loader, set_epoch
from vlreid.datasets.manifest import ReIDRecord, build_manifest
from vlreid.method_options import SVLLConfig
from vlreid.preprocessing import Preprocessing
from vlreid.training.data import ShuffledRows, build_stage_loader, load_run_data, set_loader_epoch

HEIGHT, WIDTH, PADDING = 64, 32, 10  # PADDING: the default (official) of data.augmentation
AREA = HEIGHT * WIDTH
PREPROCESSING = Preprocessing(size=(HEIGHT, WIDTH), mean=(0.5,) * 3, std=(0.5,) * 3)
VIEW_AUGMENTATION = SVLLConfig().view_augmentation("image")
IDS, IMAGES_PER_ID = 8, 4


@dataclass(frozen=True)
class Draw:
    """What one augmented image shows: flip, crop offset (in [-PADDING, PADDING]), erased box."""

    flip: bool
    top: int
    left: int
    box: tuple[int, int, int, int] | None  # (top, left, height, width)


def pattern(marker: int) -> torch.Tensor:
    """``uint8`` ``(3, H, W)``: row + 1, column + 1, ``marker``."""
    rows = torch.arange(1, HEIGHT + 1).view(HEIGHT, 1).expand(HEIGHT, WIDTH)
    cols = torch.arange(1, WIDTH + 1).view(1, WIDTH).expand(HEIGHT, WIDTH)
    return torch.stack([rows, cols, torch.full_like(rows, marker)]).to(torch.uint8)


def naive_crop(pixels: torch.Tensor, flip: bool, top: int, left: int) -> torch.Tensor:
    """Flip, zero-pad by PADDING, take the window shifted by (top, left): the torchvision chain."""
    source = pixels.flip(-1) if flip else pixels
    padded = torch.nn.functional.pad(source, (PADDING,) * 4)
    return padded[
        :, PADDING + top : PADDING + top + HEIGHT, PADDING + left : PADDING + left + WIDTH
    ]


def decode(image: torch.Tensor, raw: torch.Tensor) -> Draw:
    """Read the flip, crop and erased box of ``image`` (normalised) drawn from ``raw``."""
    mean = torch.tensor(PREPROCESSING.mean, dtype=torch.float64).view(3, 1, 1)
    std = torch.tensor(PREPROCESSING.std, dtype=torch.float64).view(3, 1, 1)
    values = (image.double() * std + mean) * 255
    rounded = values.round()
    integral = ((values - rounded).abs() < 1e-3).all(dim=0)
    content = integral & (rounded[2] == raw[2, 0, 0])
    y, x = (int(v) for v in torch.nonzero(content)[0])
    row, col = int(rounded[0, y, x]) - 1, int(rounded[1, y, x]) - 1
    candidates = []  # (erased pixels, flip, top, left) of both readings of the column
    for flip, source_col in ((False, col), (True, WIDTH - 1 - col)):
        top, left = row - y, source_col - x
        if max(abs(top), abs(left)) <= PADDING:
            expected = naive_crop(raw, flip, top, left).double()
            candidates.append((~(integral & (rounded == expected).all(dim=0)), flip, top, left))
    erased, flip, top, left = min(candidates, key=lambda candidate: int(candidate[0].sum()))
    count = int(erased.sum())
    if not count:
        return Draw(flip, top, left, None)
    ys, xs = torch.nonzero(erased, as_tuple=True)
    y0, x0 = int(ys.min()), int(xs.min())
    box = (y0, x0, int(ys.max()) - y0 + 1, int(xs.max()) - x0 + 1)
    # the pixels that differ from the naive crop fill one rectangle exactly
    assert box[2] * box[3] == count, f"the {count} erased pixels are not one rectangle {box}"
    return Draw(flip, top, left, box)


def erasable(box: tuple[int, int, int, int], low: float, high: float) -> bool:
    """Whether timm's ``round(sqrt(T * r))`` x ``round(sqrt(T / r))`` gives ``box`` for some
    target area T in [low, high] x AREA: T lies in [(h - 1/2)(w - 1/2), (h + 1/2)(w + 1/2)]."""
    _, _, height, width = box
    return (height - 0.5) * (width - 0.5) <= high * AREA and (height + 0.5) * (
        width + 0.5
    ) >= low * AREA


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """PNG (lossless) pattern images at the input size, so resizing leaves them unchanged."""
    root = tmp_path_factory.mktemp("views")
    records = []
    for pid in range(IDS):
        for index in range(IMAGES_PER_ID):
            relpath = f"{pid:04d}_c{index % 2 + 1}_{index}.png"
            marker = 100 + pid * IMAGES_PER_ID + index
            Image.fromarray(pattern(marker).permute(1, 2, 0).numpy()).save(root / relpath)
            records.append(ReIDRecord(relpath, pid, index % 2, "train", "market1501"))
    return root, build_manifest(records)


def raw_pixels(root: Path, relpath: str) -> torch.Tensor:
    with Image.open(root / relpath) as image:
        return torch.from_numpy(np.asarray(image.convert("RGB")).transpose(2, 0, 1).copy())


def loader(
    tree: tuple[Path, pd.DataFrame], views: bool, workers: int = 0, cache: str | None = None
):
    root, manifest = tree
    data = DataConfig(batch_size=16, num_instances=4, num_workers=workers, cache=cache)
    return build_train_loader(
        manifest,
        root,
        data,
        PREPROCESSING,
        3,
        view_augmentation=VIEW_AUGMENTATION if views else None,
    )


def epoch(train_loader, number: int) -> list[dict]:
    set_epoch(train_loader, number)
    return list(train_loader)


def test_views_have_their_own_crops_and_erased_boxes(tree: tuple[Path, pd.DataFrame]) -> None:
    root, _ = tree
    draws: list[tuple[Draw, Draw, Draw]] = []
    for number in (0, 1):
        for batch in epoch(loader(tree, views=True), number):
            assert batch["views"].shape == (16, 2, 3, HEIGHT, WIDTH)
            for image, views, relpath in zip(
                batch["images"], batch["views"], batch["relpaths"], strict=True
            ):
                raw = raw_pixels(root, relpath)
                draws.append((decode(image, raw), decode(views[0], raw), decode(views[1], raw)))
    mains = [main for main, _, _ in draws]
    views = [view for _, *pair in draws for view in pair]
    assert len(mains) == 64
    # every crop is a pad-10 random crop (offsets over most of [-10, 10]), both flips occur
    assert len({view.top for view in views}) >= 15 and len({view.left for view in views}) >= 15
    assert 0.3 < np.mean([view.flip for view in views]) < 0.7
    # a view's box, when erased (p 0.5), covers 33% to 1/3 of the image; the main image's 2% to 1/3
    erased = [view.box for view in views if view.box is not None]
    assert 0.3 < len(erased) / len(views) < 0.7
    assert all(erasable(box, 0.33, 1 / 3) for box in erased)
    main_boxes = [main.box for main in mains if main.box is not None]
    assert main_boxes and all(erasable(box, 0.02, 1 / 3) for box in main_boxes)
    assert not all(erasable(box, 0.33, 1 / 3) for box in main_boxes)

    def crop(draw: Draw) -> tuple[bool, int, int]:
        return draw.flip, draw.top, draw.left

    # independent draws: crops of the two views, and of a view and its main image, seldom meet
    # (1 in 882 by chance), and no two boxes coincide
    assert sum(crop(first) == crop(second) for _, first, second in draws) <= 2
    assert sum(crop(main) == crop(view) for main, *pair in draws for view in pair) <= 4
    pairs = [(first.box, second.box) for _, first, second in draws]
    both = [(a, b) for a, b in pairs if a is not None and b is not None]
    assert both and all(a != b for a, b in both)


def test_views_leave_the_main_images_as_without_them(tree: tuple[Path, pd.DataFrame]) -> None:
    plain, with_views = epoch(loader(tree, views=False), 1), epoch(loader(tree, views=True), 1)
    cached = epoch(loader(tree, views=True, cache="memory"), 1)
    for left, right, memory in zip(plain, with_views, cached, strict=True):
        assert "views" not in left
        assert left["relpaths"] == right["relpaths"]
        torch.testing.assert_close(left["images"], right["images"], rtol=0, atol=0)
        torch.testing.assert_close(memory["views"], right["views"], rtol=0, atol=0)


def test_views_replay_exactly_with_workers(tree: tuple[Path, pd.DataFrame]) -> None:
    """Workers seed the views from the epoch's seed: a rebuilt loader (a resumed run) and a
    replayed epoch give the same views."""
    first, second = loader(tree, views=True, workers=2), loader(tree, views=True, workers=2)
    epoch_one = epoch(first, 1)
    for left, right in zip(epoch_one, epoch(second, 1), strict=True):
        torch.testing.assert_close(left["views"], right["views"], rtol=0, atol=0)
    epoch(first, 2)
    torch.testing.assert_close(epoch(first, 1)[0]["views"], epoch_one[0]["views"], rtol=0, atol=0)
    assert not torch.equal(epoch_one[0]["views"][:, 0], epoch_one[0]["views"][:, 1])


def test_only_svll_image_stage_batches_carry_views(tmp_path: Path) -> None:
    root = make_tiny_dataset(tmp_path / "data")
    for method in ("svll", "clip-reid"):
        config = tiny_config(root, method)
        data = load_run_data(config.data)
        prompt = build_stage_loader(config, "prompt", data)
        assert isinstance(prompt, ShuffledRows)
        image = build_stage_loader(config, "image", data)
        set_loader_epoch(image, 1)
        batch = next(iter(image))
        if method == "svll":
            assert batch["views"].shape == (
                *batch["images"].shape[:1],
                2,
                *batch["images"].shape[1:],
            )
        else:
            assert "views" not in batch
