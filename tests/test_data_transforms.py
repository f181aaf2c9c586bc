"""ReID transforms: preprocessing record, parity with torchvision, flip / crop / erasing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

from vlreid.datasets.transforms import (
    CLIP_MEAN,
    CLIP_STD,
    IMAGENET_MEAN,
    Preprocessing,
    build_eval_transform,
    build_train_transform,
)
from vlreid.model_config import ModelConfig

SIZE = (64, 32)


def _random_image(seed: int = 0, size: tuple[int, int] = (24, 48)) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3))
    return Image.fromarray(pixels.astype(np.uint8))


def test_preprocessing_round_trips_through_json_and_has_presets() -> None:
    preprocessing = Preprocessing.imagenet(size=(384, 128))
    restored = Preprocessing.from_dict(json.loads(json.dumps(preprocessing.to_dict())))
    assert restored == preprocessing
    assert Preprocessing.clip().mean == CLIP_MEAN and Preprocessing.clip().std == CLIP_STD
    assert Preprocessing.imagenet().mean == IMAGENET_MEAN
    assert Preprocessing().size == (256, 128) and Preprocessing().interpolation == "bicubic"
    with pytest.raises(ValueError, match="unknown preprocessing keys"):
        Preprocessing.from_dict({"size": [256, 128], "colour": "rgb"})
    with pytest.raises(ValueError, match="interpolation"):
        Preprocessing(interpolation="lanczos7")


def test_eval_transform_normalises_a_solid_image_to_known_values() -> None:
    colour = (200, 100, 30)
    image = Image.new("RGB", (24, 48), colour)
    output = build_eval_transform(Preprocessing.clip(size=SIZE))(image)
    assert output.shape == (3, *SIZE) and output.dtype == torch.float32
    for channel in range(3):
        expected = (colour[channel] / 255 - CLIP_MEAN[channel]) / CLIP_STD[channel]
        torch.testing.assert_close(output[channel], torch.full(SIZE, expected), rtol=0, atol=1e-6)


def test_eval_transform_equals_the_torchvision_chain() -> None:
    preprocessing = Preprocessing.imagenet(size=SIZE)
    reference = T.Compose(
        [
            T.Resize(SIZE, interpolation=T.InterpolationMode.BICUBIC),
            T.ToTensor(),
            T.Normalize(preprocessing.mean, preprocessing.std),
        ]
    )
    image = _random_image(1)
    ours = build_eval_transform(preprocessing)(image)
    torch.testing.assert_close(ours, reference(image), rtol=0, atol=1e-5)
    # Grayscale input is converted to RGB first.
    gray = image.convert("L")
    assert build_eval_transform(preprocessing)(gray).shape == (3, *SIZE)


def test_a_model_config_evaluates_bilinear_and_trains_bicubic_as_clip_reid() -> None:
    """CLIP-ReID's ``val_transforms`` is ``T.Resize(SIZE_TEST)`` (torchvision's default filter,
    bilinear) and its ``train_transforms`` starts with ``T.Resize(SIZE_TRAIN, interpolation=3)``
    (bicubic): :meth:`ModelConfig.preprocessing` and :meth:`train_preprocessing` resize so."""
    config = ModelConfig(image_size=SIZE, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    normalize = [T.ToTensor(), T.Normalize(config.mean, config.std)]
    image = _random_image(3)
    val_transforms = T.Compose([T.Resize(SIZE), *normalize])
    evaluation = build_eval_transform(config.preprocessing())(image)
    torch.testing.assert_close(evaluation, val_transforms(image), rtol=0, atol=1e-5)
    train_resize = T.Compose([T.Resize(SIZE, interpolation=3), *normalize])
    untouched = {"flip_probability": 0.0, "padding": 0, "erasing_probability": 0.0}
    training = build_train_transform(config.train_preprocessing(), **untouched)(image)
    torch.testing.assert_close(training, train_resize(image), rtol=0, atol=1e-5)
    assert (evaluation - training).abs().max() > 0.05  # the two filters do differ here


def test_flip_only_and_identity_settings() -> None:
    preprocessing = Preprocessing.clip(size=SIZE)
    image = _random_image(2)
    evaluated = build_eval_transform(preprocessing)(image)
    no_op = build_train_transform(
        preprocessing, flip_probability=0.0, padding=0, erasing_probability=0.0
    )
    torch.testing.assert_close(no_op(image, torch.Generator().manual_seed(0)), evaluated)
    always_flip = build_train_transform(
        preprocessing, flip_probability=1.0, padding=0, erasing_probability=0.0
    )
    torch.testing.assert_close(
        always_flip(image, torch.Generator().manual_seed(0)), evaluated.flip(-1)
    )


def test_pad_and_crop_equals_torchvision_pad_then_crop_at_the_drawn_offsets() -> None:
    preprocessing = Preprocessing.clip(size=SIZE)
    transform = build_train_transform(preprocessing, flip_probability=0.0, erasing_probability=0)
    image = _random_image(3)
    resized = image.resize((SIZE[1], SIZE[0]), Image.Resampling.BICUBIC)
    offsets = set()
    for seed in range(12):
        generator = torch.Generator().manual_seed(seed)
        replay = torch.Generator().manual_seed(seed)
        torch.rand((), generator=replay)  # the flip draw
        top = int(torch.randint(0, 21, (1,), generator=replay))
        left = int(torch.randint(0, 21, (1,), generator=replay))
        offsets.add((top, left))
        cropped = TF.crop(TF.pad(resized, 10, fill=0), top, left, SIZE[0], SIZE[1])
        expected = TF.normalize(TF.to_tensor(cropped), preprocessing.mean, preprocessing.std)
        torch.testing.assert_close(transform(image, generator), expected, rtol=0, atol=1e-6)
    assert len(offsets) > 6  # the seeds really exercised different crops


@pytest.mark.parametrize("fill", ["pixel", "mean"])
def test_erasing_replaces_one_rectangle_of_the_configured_area(fill: str) -> None:
    preprocessing = Preprocessing.clip(size=(128, 64))
    image = _random_image(4)
    evaluated = build_eval_transform(preprocessing)(image)
    transform = build_train_transform(
        preprocessing, flip_probability=0.0, padding=0, erasing_probability=1.0, erasing_fill=fill
    )
    for seed in range(10):
        output = transform(image, torch.Generator().manual_seed(seed))
        changed = (output != evaluated).any(dim=0)
        rows = torch.nonzero(changed.any(dim=1)).flatten()
        cols = torch.nonzero(changed.any(dim=0)).flatten()
        assert len(rows) > 0
        top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        # Everything that changed lies in one rectangle, and the rectangle is (almost) all changed.
        box = changed[top:bottom, left:right]
        assert changed.sum() == box.sum() and box.float().mean() > 0.95
        fraction = float((bottom - top) * (right - left)) / (128 * 64)
        assert 0.015 <= fraction <= 0.36
        region = output[:, top:bottom, left:right]
        if fill == "mean":
            assert torch.all(region == 0)
        else:
            assert abs(float(region.mean())) < 0.5 and 0.6 < float(region.std()) < 1.4


def test_fixed_seeds_reproduce_and_different_seeds_differ() -> None:
    transform = build_train_transform(Preprocessing.clip(size=SIZE))
    image = _random_image(5)
    first = transform(image, torch.Generator().manual_seed(11))
    again = transform(image, torch.Generator().manual_seed(11))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    outputs = [transform(image, torch.Generator().manual_seed(s)) for s in range(5)]
    assert any(not torch.equal(first, output) for output in outputs)
