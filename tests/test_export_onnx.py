"""``reid export --format onnx``: the graph, the sidecar, the reference preprocessing and the
parity check on real Market-1501 crops and on synthetic images (also with SIE)."""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from vlreid.cli import app
from vlreid.datasets.transforms import Preprocessing
from vlreid.export import parity, reference
from vlreid.export.onnx_file import OPSET, export_onnx, file_sha256
from vlreid.model import load_model, save_inference_weights
from vlreid.model.backbone import BackboneConfig, ReIDModel
from vlreid.testing.clip import tiny_clip_config

onnx = pytest.importorskip("onnx")
onnxruntime = pytest.importorskip("onnxruntime")
torch.set_num_threads(1)
runner = CliRunner()
SIZE = (64, 32)


def tiny_checkpoint(path: Path, sie_cameras: int = 0) -> Path:
    """A randomly initialised tiny-CLIP ReID model (BN statistics perturbed) saved as weights."""
    torch.manual_seed(0)
    config = BackboneConfig(
        clip_config=tiny_clip_config(image_size=SIZE), image_size=SIZE, sie_cameras=sie_cameras
    )
    model = ReIDModel(config).eval()
    with torch.no_grad():
        for neck in (model.bottleneck, model.bottleneck_projected):
            neck.running_mean.normal_()
            neck.running_var.uniform_(0.5, 2.0)
    save_inference_weights(path, model, Preprocessing.clip(SIZE))
    return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vlreid.synthetic import make_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic") / "data"
    make_synthetic_dataset(root, ids=8, cameras=2, seed=0, images_per_camera=2, height=96, width=48)
    return root


def export(*arguments: str) -> tuple[int, str]:
    result = runner.invoke(app, ["export", *arguments])
    return result.exit_code, result.output


def test_export_writes_a_checked_graph_with_a_dynamic_batch_and_a_full_sidecar(
    tmp_path: Path, shared_data: Path
) -> None:
    weights = tiny_checkpoint(tmp_path / "model.safetensors")
    out = tmp_path / "deploy" / "model.onnx"
    code, output = export("--checkpoint", str(weights), "--out", str(out),
                          "--images", str(shared_data / "market1501-samples"))  # fmt: skip
    assert code == 0, output
    assert "parity ok: 5 images" in output and "top-4 retrieval identical for 100.0%" in output

    graph = onnx.load(str(out))
    assert [entry.version for entry in graph.opset_import if entry.domain in ("", "ai.onnx")] == [
        OPSET
    ]
    (images,) = graph.graph.input
    dims = images.type.tensor_type.shape.dim
    assert images.name == "images" and dims[0].dim_param == "batch"
    assert [dim.dim_value for dim in dims[1:]] == [3, *SIZE]
    assert images.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert not [i.name for i in graph.graph.initializer if "classifier" in i.name]

    sidecar = json.loads((tmp_path / "deploy" / "model.onnx.json").read_text())
    spec = sidecar["preprocessing"]
    assert (spec["height"], spec["width"], spec["interpolation"]) == (*SIZE, "bicubic")
    assert spec["channel_order"] == "RGB" and spec["input_range"] == [0.0, 1.0]
    assert spec["mean"] == list(Preprocessing.clip().mean)
    assert spec["std"] == list(Preprocessing.clip().std)
    assert sidecar["outputs"][0]["feature_size"] == 64 + 32
    assert sidecar["outputs"][0]["l2_normalized"] is True
    assert sidecar["opset"] == OPSET and sidecar["source"]["sha256"] == file_sha256(weights)
    assert sidecar["source"]["version"] and sidecar["inputs"][0]["layout"] == "NCHW"


def test_reference_preprocessing_equals_load_models_and_needs_only_pil_and_numpy(
    tmp_path: Path, shared_data: Path, synthetic: Path
) -> None:
    exported = export_onnx(tiny_checkpoint(tmp_path / "model.safetensors"), tmp_path / "m.onnx")
    paths = sorted((shared_data / "market1501-samples").glob("*.jpg"))
    paths += sorted((synthetic / "query").glob("*.jpg"))[:4]
    images = [Image.open(path) for path in paths]
    images += [images[0].convert("L"), images[1].convert("RGBA"), images[2].resize(SIZE[::-1])]
    ours = reference.preprocess(images, exported.sidecar)
    assert ours.dtype == np.float32 and ours.shape == (len(images), 3, *SIZE)
    np.testing.assert_array_equal(ours, exported.model.preprocess(images).numpy())

    tree = ast.parse(inspect.getsource(reference))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}  # fmt: skip
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom)}  # fmt: skip
    assert imported <= {"__future__", "collections", "typing", "json", "numpy", "PIL"}


def test_parity_on_real_and_synthetic_images_batch_one_equals_batch_eight(
    tmp_path: Path, shared_data: Path, synthetic: Path
) -> None:
    exported = export_onnx(tiny_checkpoint(tmp_path / "model.safetensors"), tmp_path / "m.onnx")
    for paths in (
        sorted((shared_data / "market1501-samples").glob("*.jpg")),
        parity.folder_images(synthetic / "query")
        + parity.folder_images(synthetic / "bounding_box_test"),
    ):
        report = parity.check_parity(exported.path, exported.sidecar, exported.model, paths)
        assert report.passed, report.describe()
        assert report.max_abs_diff < 1e-5 and report.preprocessing_max_abs_diff == 0.0
        assert report.top_k == min(10, len(paths) - 1) and report.top_k_agreement == 1.0
    assert report.num_images == 24 and report.batch_size_checked == 8
    assert report.batch_max_abs_diff < 1e-5

    # the deployer's path, end to end: sidecar + reference preprocessing + onnxruntime
    session = onnxruntime.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    images = [Image.open(path) for path in paths[:8]]
    inputs = reference.preprocess(images, json.loads(exported.sidecar_path.read_text()))
    batch = session.run(None, {"images": inputs})[0]
    singles = np.concatenate(
        [session.run(None, {"images": inputs[i : i + 1]})[0] for i in range(8)]
    )
    np.testing.assert_allclose(batch, singles, atol=1e-5)
    expected = load_model(tmp_path / "model.safetensors")(images).numpy()
    np.testing.assert_allclose(batch, expected, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)


def test_sie_models_take_camids_and_pass_on_the_datasets_query_images(
    tmp_path: Path, synthetic: Path
) -> None:
    weights = tiny_checkpoint(tmp_path / "model.safetensors", sie_cameras=2)
    out = tmp_path / "sie.onnx"
    code, output = export("--checkpoint", str(weights), "--out", str(out),
                          "--dataset", "synthetic", "--root", str(synthetic))  # fmt: skip
    assert code == 0, output
    assert "parity ok: 8 images" in output and "top-7 retrieval identical for 100.0%" in output
    sidecar = json.loads(out.with_name("sie.onnx.json").read_text())
    assert [entry["name"] for entry in sidecar["inputs"]] == ["images", "camids"]
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    inputs = np.random.default_rng(0).normal(size=(2, 3, *SIZE)).astype(np.float32)
    cam0 = session.run(None, {"images": inputs, "camids": np.array([0, 0])})[0]
    cam1 = session.run(None, {"images": inputs, "camids": np.array([1, 1])})[0]
    assert np.abs(cam0 - cam1).max() > 1e-3  # the camera embedding is in the graph
    model = load_model(weights)
    expected = model(torch.from_numpy(inputs), torch.tensor([1, 1])).numpy()
    np.testing.assert_allclose(cam1, expected, atol=1e-5)


def test_a_preprocessing_mistake_fails_the_check_with_exit_status_one(
    tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def bgr(images: list[Image.Image], sidecar: dict) -> np.ndarray:
        return reference.preprocess(images, sidecar)[:, ::-1].copy()  # the classic BGR bug

    monkeypatch.setattr(parity, "preprocess", bgr)
    weights = tiny_checkpoint(tmp_path / "model.safetensors")
    code, output = export("--checkpoint", str(weights), "--out", str(tmp_path / "m.onnx"),
                          "--images", str(shared_data / "market1501-samples"))  # fmt: skip
    assert code == 1 and "parity failed: 5 images" in output
    assert "sidecar preprocessing vs load_model's max diff 0.00e+00" not in output


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ([], "the parity check needs images"),
        (["--format", "tflite"], "unknown --format 'tflite'"),
        (["--dataset", "synthetic"], "--dataset needs --root"),
        (["--images", "absent"], "/absent is not a folder"),  # made absolute
    ],
)
def test_bad_arguments_give_one_line(tmp_path: Path, arguments: list[str], message: str) -> None:
    weights = tiny_checkpoint(tmp_path / "model.safetensors")
    code, output = export("--checkpoint", str(weights), "--out", str(tmp_path / "m.onnx"),
                          *arguments)  # fmt: skip
    assert code == 2 and output.startswith("error:") and message in output
    assert not (tmp_path / "m.onnx").exists()
