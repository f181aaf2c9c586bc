"""``reid export --format folder`` and ``load_model`` of a folder, and of a Hub repo served from a
fake Hugging Face cache (offline: ``HF_HUB_OFFLINE=1``, never the network)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from tiny_runs import make_tiny_dataset, tiny_config
from vlreid.cli import app
from vlreid.errors import DataFileError
from vlreid.model import WEIGHTS_FILE, load_model
from vlreid.training.loop import train
from vlreid.training.report import read_metrics

torch.set_num_threads(1)
runner = CliRunner()
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny baseline run (metrics.jsonl, provenance.json, config.toml, weights)."""
    base = tmp_path_factory.mktemp("folder")
    data = make_tiny_dataset(base / "data")
    train(tiny_config(data, "baseline", epochs=2), base / "run")
    return base / "run"


@pytest.fixture(scope="module")
def folder(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "model"
    result = runner.invoke(app, ["export", "--checkpoint", str(run / WEIGHTS_FILE),
                                 "--format", "folder", "--out", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def images(run: Path) -> list[Image.Image]:
    data = run.parent / "data" / "query"
    return [Image.open(path) for path in sorted(data.glob("*.jpg"))[:4]]


def test_the_folder_holds_weights_config_and_a_model_card(run: Path, folder: Path) -> None:
    assert sorted(path.name for path in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    assert (folder / WEIGHTS_FILE).read_bytes() == (run / WEIGHTS_FILE).read_bytes()
    config = json.loads((folder / "config.json").read_text())
    assert config["format"] == "vlreid-model" and config["method"] == "baseline"
    assert config["datasets"] == ["synthetic"] and config["feature_dim"] == 96
    assert config["backbone"]["image_size"] == [32, 16] and config["backbone"]["num_classes"] == 0
    provenance = json.loads((run / "provenance.json").read_text())
    assert config["provenance"]["digest"] == provenance["digest"]

    card = (folder / "README.md").read_text()
    last = read_metrics(run / "metrics.jsonl")[-1]
    row = " | ".join(
        f"{100 * last[key]:.2f}" for key in ("mAP", "rank1", "rank5", "rank10", "mINP")
    )
    assert "| mAP | R1 | R5 | R10 | mINP |" in card and f"| {row} |" in card
    assert f"epoch {last['epoch']}" in card and "method: `baseline`" in card
    assert provenance["command"] in card  # the command that trained it
    assert (run / "config.toml").read_text().strip() in card
    assert card.startswith("---\nlibrary_name: vlreid\n")


def test_load_model_of_the_folder_equals_the_checkpoint(run: Path, folder: Path) -> None:
    pictures = images(run)
    expected = load_model(run / WEIGHTS_FILE)(pictures)
    assert torch.equal(load_model(folder)(pictures), expected)
    assert torch.equal(load_model(str(folder))(pictures), expected)


def test_a_config_json_that_disagrees_with_the_weights_is_refused(
    folder: Path, tmp_path: Path
) -> None:
    copy = shutil.copytree(folder, tmp_path / "copy")
    config = json.loads((copy / "config.json").read_text())
    config["preprocessing"]["size"] = [256, 128]
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(DataFileError, match="'preprocessing' differs from the metadata"):
        load_model(copy)
    (copy / WEIGHTS_FILE).unlink()
    with pytest.raises(DataFileError, match="folder without model.safetensors"):
        load_model(copy)


HUB_SCRIPT = """
import json, sys
import torch
from PIL import Image
import vlreid
from vlreid.errors import DataFileError

images = [Image.open(path) for path in sys.argv[1:]]
model = vlreid.load_model("someone/tiny-reid")
print(json.dumps({"features": model(images).tolist()}))
pinned = vlreid.load_model("someone/tiny-reid@COMMIT")
print(json.dumps({"pinned_equal": torch.equal(pinned(images), model(images))}))
try:
    vlreid.load_model("someone/absent")
except DataFileError as error:
    print(json.dumps({"error": str(error)}))
""".replace("COMMIT", COMMIT)


def test_load_model_from_a_hub_repo_in_a_fake_offline_cache(
    run: Path, folder: Path, tmp_path: Path
) -> None:
    cache = tmp_path / "hub"
    repo = cache / "models--someone--tiny-reid"
    shutil.copytree(folder, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    script = tmp_path / "hub.py"
    script.write_text(HUB_SCRIPT)
    paths = [str(path) for path in sorted((run.parent / "data" / "query").glob("*.jpg"))[:4]]
    environment = {
        **os.environ,
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
        "OMP_NUM_THREADS": "1",
    }
    finished = subprocess.run([sys.executable, str(script), *paths], capture_output=True,
                              text=True, env=environment, timeout=300)  # fmt: skip
    assert finished.returncode == 0, finished.stdout + finished.stderr
    lines = [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]
    expected = load_model(run / WEIGHTS_FILE)(images(run))
    assert torch.equal(torch.tensor(lines[0]["features"]), expected)
    assert lines[1]["pinned_equal"] is True
    assert "'someone/absent'" in lines[2]["error"] and "Hugging Face Hub" in lines[2]["error"]
