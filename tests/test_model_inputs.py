"""What ``model(x)`` accepts (vlreid.model.inputs), the package root's lazy API, and refusals."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlreid.datasets.transforms import Preprocessing
from vlreid.errors import ReIDError
from vlreid.model import BackboneConfig, InferenceModel, ReIDModel
from vlreid.testing.clip import tiny_clip_config

torch.set_num_threads(1)
SIZE = (32, 16)


@pytest.fixture(scope="module")
def model() -> InferenceModel:
    torch.manual_seed(0)
    backbone = BackboneConfig(clip_config=tiny_clip_config(image_size=SIZE), image_size=SIZE)
    return InferenceModel(ReIDModel(backbone), Preprocessing.clip(SIZE), {})


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three RGB crops of different sizes (none at the model's 32x16), saved as PNG (lossless)."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for index, (height, width) in enumerate([(64, 32), (50, 21), (128, 64)]):
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        paths.append(folder / f"{index}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths


def test_every_input_kind_gives_the_features_of_the_path(model, images) -> None:
    reference = model([str(path) for path in images])
    assert reference.shape == (3, model.feature_dim)
    for index, path in enumerate(images):
        pil = Image.open(path).convert("RGB")
        array = np.asarray(pil)
        chw = torch.from_numpy(array.copy()).permute(2, 0, 1)
        for kind, value in {
            "str": str(path),
            "Path": path,
            "PIL": pil,
            "PIL list": [pil],
            "HWC uint8 array": array,
            "CHW uint8 tensor": chw,
            "BCHW uint8 tensor": chw.unsqueeze(0),
            "CHW float tensor in [0, 1]": chw.float() / 255,
        }.items():
            features = model(value)
            assert features.shape == (1, model.feature_dim), kind
            torch.testing.assert_close(features[0], reference[index], msg=kind)


def test_a_batch_equals_one_image_at_a_time(model, images) -> None:
    batch = model(images)
    one_at_a_time = torch.cat([model(path) for path in images])
    torch.testing.assert_close(batch, one_at_a_time, rtol=1e-5, atol=1e-6)
    same_size = np.stack([np.asarray(Image.open(images[0]).convert("RGB"))] * 2)
    torch.testing.assert_close(model(same_size), model([images[0], images[0]]))


def test_a_normalised_float_batch_at_the_model_size_is_used_as_is(model, images) -> None:
    """The fast path: the preprocessed tensor reaches the network unchanged."""
    preprocessed = model.preprocess(images)
    assert preprocessed.shape == (3, 3, *SIZE) and preprocessed.min() < 0
    assert model.preprocess(preprocessed) is preprocessed
    torch.testing.assert_close(model(preprocessed), model(images))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.zeros((8, 4), np.float64), "a NumPy image must be uint8 (H, W, 3) RGB, got float64"),
        (torch.zeros(1, 4, 8, 8), "an image tensor must be (3, H, W) or (B, 3, H, W) RGB"),
        (torch.full((3, 20, 10), -1.5), "a float tensor of (20, 10) pixels must hold RGB values"),
        ([], "no image given"),
        (42, "cannot read an image from int"),
    ],
)
def test_other_inputs_are_refused_with_what_is_expected(model, value, message) -> None:
    with pytest.raises(ReIDError, match=message.replace("(", r"\(").replace(")", r"\)")):
        model(value)


def test_an_unreadable_path_names_the_file(model, tmp_path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_text("not an image")
    with pytest.raises(ReIDError, match="cannot read image .*broken.jpg"):
        model(broken)


def test_the_package_root_lists_load_model_and_stays_light() -> None:
    code = (
        "import sys, vlreid; print('load_model' in dir(vlreid), 'torch' in sys.modules);"
        "vlreid.load_model; print('torch' in sys.modules)"
    )
    finished = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.split() == ["True", "False", "True"]
