"""The built-in tiny LLaVA (``builtin:tiny-llava-synthetic``) really captions synthetic pedestrians.

The model is the packaged one (``src/vlreid/assets/tiny-llava-synthetic``, trained by
``scripts/train_tiny_llava.py``), run through ``reid caption`` (processor, pad-to-square,
left-padded greedy generation, the person template's parser) and scored by ``reid captions
audit`` on identities and cameras it never saw (``reid data synth --seed 123``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from vlreid.captioning.builtin import BUILTIN_MODELS, builtin_model_path, resolve_model
from vlreid.cli import app

MODEL = "builtin:tiny-llava-synthetic"
runner = CliRunner()


def invoke(*arguments: str | Path):
    return runner.invoke(app, [str(argument) for argument in arguments])


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 identities, 3 cameras, dataset seed 123: people and cameras the model never saw."""
    root = tmp_path_factory.mktemp("synthetic")
    result = invoke("data", "synth", "--out", root, "--ids", "12", "--cameras", "3",
                    "--images-per-camera", "1", "--seed", "123")  # fmt: skip
    assert result.exit_code == 0, result.output
    return root


def test_builtin_name_resolves_to_the_packaged_folder() -> None:
    folder = builtin_model_path(MODEL)
    assert folder.name == BUILTIN_MODELS["tiny-llava-synthetic"]
    assert folder.parent.name == "assets"
    assert (folder / "model.safetensors").is_file()
    assert resolve_model(MODEL) == str(folder)
    assert resolve_model("llava-hf/llava-1.5-7b-hf") == "llava-hf/llava-1.5-7b-hf"
    training = json.loads((folder / "training.json").read_text())
    assert training["held_out"]["accuracy"]["mean"] >= 0.85


def test_captions_of_unseen_identities_agree_with_their_attributes(
    synthetic: Path, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "captions"
    result = invoke("caption", "--dataset", "synthetic", "--root", synthetic, "--out", out,
                    "--split", "all", "--captioner", "llava", "--model", MODEL,
                    "--batch-size", "16", "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    captions = pd.read_parquet(out)
    assert len(captions) >= 30
    assert set(captions["model"]) == {MODEL}
    assert (captions["status"] == "ok").mean() >= 0.9, captions["status"].value_counts()

    audit = invoke("captions", "audit", out, "--attributes", synthetic / "attributes.parquet",
                   "--format", "json")  # fmt: skip
    assert audit.exit_code == 0, audit.output
    report = json.loads(audit.stdout)
    assert report["labelled"] == len(captions)
    agreement = {entry["field"]: round(entry["agreement"], 2) for entry in report["fields"]}
    assert len(agreement) == 9
    # Chance (majority value per field) is about 0.4 overall; the shipped model scores ~0.9.
    assert report["overall"] >= 0.7, agreement


def test_unknown_builtin_is_one_clear_error_line(synthetic: Path, tmp_path: Path) -> None:
    result = invoke("caption", "--dataset", "synthetic", "--root", synthetic,
                    "--out", tmp_path / "captions", "--model", "builtin:unknown")  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: unknown built-in model 'builtin:unknown'")
    assert "builtin:tiny-llava-synthetic" in lines[0]
