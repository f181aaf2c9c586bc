"""Inference checkpoints: contents, strict loading, vlreid.load_model, and the CLI end to end
(reid caption -> reid train -> reid evaluate --checkpoint / reid extract), also in a process
where transformers cannot be imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

import vlreid
from tiny_runs import make_tiny_dataset, write_tiny_config
from vlreid.cli import app
from vlreid.config import load_config
from vlreid.errors import DataFileError
from vlreid.model import WEIGHTS_FILE, load_model
from vlreid.training.checkpoint import STATE_FILE
from vlreid.training.report import read_metrics

torch.set_num_threads(1)  # tiny models on shared cores (see test_training_loop.py)
runner = CliRunner()


def invoke(*arguments: str) -> str:
    result = runner.invoke(app, list(arguments))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Attribute captions, then ``reid train`` (scgi with SIE), stopped and resumed."""
    base = tmp_path_factory.mktemp("run")
    data = make_tiny_dataset(base / "data")
    captions = base / "attribute_captions"
    invoke(
        "caption",
        "--dataset", "synthetic",
        "--root", str(data),
        "--out", str(captions),
        "--captioner", "attributes",
        "--attributes", str(data / "attributes.parquet"),
    )  # fmt: skip
    config = write_tiny_config(base / "scgi.toml", data, "scgi", epochs=2)
    run_dir = base / "scgi"
    options = ["--run-dir", str(run_dir), "--set", f"data.captions={captions}", "--set"]
    first = invoke("train", str(config), *options, "model.sie=true", "--max-epochs", "1")
    assert "stopped after 1 epoch(s)" in first
    second = invoke("train", str(config), *options, "model.sie=true")
    assert "resuming the run" in second and "finished after 1 epoch(s)" in second
    return {"data": data, "run": run_dir, "config": run_dir / "config.toml"}


def test_weights_hold_the_image_encoder_and_neck_with_string_metadata(run: dict[str, Path]):
    weights = load_file(run["run"] / WEIGHTS_FILE)
    assert "sie_embedding" in weights and "bottleneck.weight" in weights
    assert not [key for key in weights if key.startswith(("classifier", "text", "inversion"))]
    with safe_open(str(run["run"] / WEIGHTS_FILE), framework="pt") as handle:
        metadata = handle.metadata()
    assert all(isinstance(value, str) for value in metadata.values())
    backbone = json.loads(metadata["reid.backbone"])
    assert backbone["num_classes"] == 0 and backbone["sie_cameras"] == 2
    preprocessing = json.loads(metadata["reid.preprocessing"])
    assert (preprocessing["size"], preprocessing["interpolation"]) == ([32, 16], "bilinear")
    assert json.loads(metadata["reid.config"])["method"]["name"] == "scgi"
    assert (metadata["reid.stage"], metadata["reid.epoch"]) == ("image", "2")


def test_load_model_gives_the_features_of_the_trained_model(run: dict[str, Path]) -> None:
    from vlreid.training.data import build_eval_shard, load_run_data
    from vlreid.training.setup import build_run_method

    config = load_config(run["config"])
    data = load_run_data(config.data)
    method = build_run_method(config, data)
    method.load_state_dict(torch.load(run["run"] / STATE_FILE, weights_only=True)["method"])
    trained = method.model.eval()
    batch = next(iter(build_eval_shard(config, data)[0]))

    model = vlreid.load_model(run["run"] / WEIGHTS_FILE)
    features = model(batch["images"], batch["camids"])
    with torch.no_grad():
        assert torch.equal(features, trained(batch["images"], batch["camids"]))
    assert features.shape == (len(batch["images"]), model.feature_dim) and model.uses_camids
    assert torch.allclose(features.norm(dim=1), torch.ones(len(features)))
    # PIL images go through the stored preprocessing: the evaluation transform of training
    # (bilinear, CLIP-ReID's val_transforms; the images are 64 x 32, so they are resized)
    assert model.preprocessing.interpolation == "bilinear"
    images = [Image.open(run["data"] / path) for path in batch["relpaths"][:3]]
    assert torch.equal(model.preprocess(images), batch["images"][:3])
    assert torch.equal(model(images), model(batch["images"][:3]))


def test_loading_is_strict_and_errors_name_the_file(run: dict[str, Path], tmp_path: Path) -> None:
    source = run["run"] / WEIGHTS_FILE
    with safe_open(str(source), framework="pt") as handle:
        metadata = handle.metadata()
    weights = load_file(source)
    damaged = tmp_path / "missing_key.safetensors"
    save_file({k: v for k, v in weights.items() if k != "bottleneck.weight"}, damaged, metadata)
    with pytest.raises(DataFileError, match="missing_key.safetensors.*do not match"):
        load_model(damaged)
    extra = tmp_path / "extra_key.safetensors"
    save_file({**weights, "classifier.weight": torch.zeros(4, 4)}, extra, metadata)
    with pytest.raises(DataFileError, match="Unexpected key"):
        load_model(extra)
    foreign = tmp_path / "foreign.safetensors"
    save_file(weights, foreign)
    with pytest.raises(DataFileError, match="foreign.safetensors is not a reid checkpoint"):
        load_model(foreign)
    with pytest.raises(DataFileError, match="no checkpoint at .*absent"):
        load_model(tmp_path / "absent.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(DataFileError, match="cannot read checkpoint"):
        load_model(garbage)


def test_evaluate_checkpoint_matches_the_last_training_evaluation(run: dict[str, Path]):
    output = invoke(
        "evaluate",
        "--checkpoint", str(run["run"] / WEIGHTS_FILE),
        "--dataset", "synthetic",
        "--root", str(run["data"]),
        "--format", "json",
        "--workers", "0",
    )  # fmt: skip
    scores = json.loads(output)
    last = read_metrics(run["run"] / "metrics.jsonl")[-1]
    digest = json.loads((run["run"] / "provenance.json").read_text())["digest"]
    assert scores.pop("provenance")["digest"] == digest  # the checkpoint's, see test_provenance
    assert scores.keys() == {"mAP", "rank1", "rank5", "rank10", "mINP"}
    for key, value in scores.items():
        assert value == pytest.approx(last[key], abs=1e-6)


def test_evaluate_wants_exactly_one_input(run: dict[str, Path], tmp_path: Path) -> None:
    both = ["--features", str(tmp_path / "f.npz"), "--checkpoint", str(run["run"] / WEIGHTS_FILE)]
    for arguments in ([], both, ["--checkpoint", str(run["run"] / WEIGHTS_FILE)]):
        result = runner.invoke(app, ["evaluate", *arguments])
        assert result.exit_code == 2
        assert "error:" in result.output
    assert "(exactly one input)" in runner.invoke(app, ["evaluate", *both]).output


def test_extract_writes_the_features_of_a_folder(run: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "features" / "query.npz"
    folder = run["data"] / "query"
    printed = invoke("extract", "--checkpoint", str(run["run"] / WEIGHTS_FILE),
                     "--images", str(folder), "--out", str(out), "--workers", "0")  # fmt: skip
    assert "wrote the features of 8 images" in printed
    archive = np.load(out)
    paths = sorted(path.name for path in folder.glob("*.jpg"))
    assert archive["paths"].tolist() == paths
    model = load_model(run["run"] / WEIGHTS_FILE)
    expected = model([Image.open(folder / path) for path in paths])
    np.testing.assert_array_equal(archive["features"], expected.numpy())


NO_TRANSFORMERS = """
import importlib.abc, json, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "transformers" or name.startswith("transformers."):
            raise ImportError("transformers is blocked in this process")
        return None

sys.meta_path.insert(0, Refuse())
try:
    import transformers  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("transformers was importable")

import vlreid
from vlreid.cli import main

model = vlreid.load_model(sys.argv[1])
print(json.dumps({"dim": model.feature_dim}))
sys.argv = ["reid", "evaluate", "--checkpoint", sys.argv[1], "--dataset", "synthetic",
            "--root", sys.argv[2], "--format", "json", "--workers", "0"]
try:
    main()
finally:
    loaded = sorted(m for m in sys.modules if m.split(".")[0] == "transformers" or
                    m.startswith(("vlreid.training.methods", "vlreid.captioning")))
    print(json.dumps({"loaded": loaded}))
"""


def test_evaluate_checkpoint_works_where_transformers_cannot_be_imported(
    run: dict[str, Path], tmp_path: Path
) -> None:
    script = tmp_path / "no_transformers.py"
    script.write_text(NO_TRANSFORMERS)
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(
        [sys.executable, str(script), str(run["run"] / WEIGHTS_FILE), str(run["data"])],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    lines = [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]
    assert lines[0]["dim"] == 64 + 32
    last = read_metrics(run["run"] / "metrics.jsonl")[-1]
    assert lines[1]["mAP"] == pytest.approx(last["mAP"], abs=1e-6)
    assert lines[2]["loaded"] == []
