"""`reid demo --quick` end to end: every step of the pipeline through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from vlreid.cli import app
from vlreid.demo import DemoSettings, results_markdown
from vlreid.testing.llava import build_tiny_llava


def test_quick_demo_runs_the_whole_pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every step through the command line, captions by the shipped tiny LLaVA
    (``builtin:tiny-llava-synthetic``) on identities it never saw; as the README types it, from
    a working directory, into the relative default ``--out runs/demo``."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "runs" / "demo"
    result = CliRunner().invoke(app, ["demo", "--quick"])
    assert result.exit_code == 0, result.output
    assert f"writing the demo into {out}" in result.output
    results = json.loads((out / "results.json").read_text())

    assert set(results["methods"]) == {"baseline", "scgi"}
    for scores in results["methods"].values():
        for key in ("mAP", "rank1", "rank5", "mINP"):
            assert 0.0 <= scores[key] <= 1.0
        assert scores["rank1"] <= scores["rank5"]
    captions = results["captions"]
    assert captions["captioner"] == "llava"
    assert captions["model"] == "builtin:tiny-llava-synthetic"
    assert captions["images"] == len(list((out / "data" / "bounding_box_train").glob("*.jpg")))
    assert captions["images_per_s"] > 0
    assert set(captions["fields"]) >= {"gender", "upper_color", "bag"}
    # Chance (the majority value of each field) is about 0.4; the shipped model scores about 0.9
    # on held-out identities (its training.json), less on the few images of the quick variant.
    assert captions["attribute_accuracy"] >= 0.75, captions["fields"]
    parquet = pd.read_parquet(out / "captions")
    assert (parquet["model"] == "builtin:tiny-llava-synthetic").all()

    for method in ("baseline", "scgi"):
        assert (out / f"ranked_lists_{method}.png").stat().st_size > 0
        assert (out / "runs" / method / "model.safetensors").is_file()
    assert (out / "results.md").read_text() == results_markdown(results)
    assert "baseline" in result.output and "scgi" in result.output


def test_demo_runs_any_llava_folder(tmp_path: Path) -> None:
    """``--caption-model`` takes any LLaVA folder (an untrained tiny one: poor captions, so only
    the pipeline is checked)."""
    model = build_tiny_llava(tmp_path / "tiny-llava")
    out = tmp_path / "demo"
    arguments = ["demo", "--out", str(out), "--quick", "--caption-model", str(model)]
    result = CliRunner().invoke(app, [*arguments, "--set", "stages.image.epochs=1"])
    assert result.exit_code == 0, result.output
    captions = json.loads((out / "results.json").read_text())["captions"]
    assert captions["captioner"] == "llava" and captions["model"] == str(model)
    assert 0.0 <= captions["attribute_accuracy"] <= 1.0


def test_attributes_captioner_captions_from_the_labels(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    (out / "runs" / "old").mkdir(parents=True)  # an earlier demo: replaced, and said so
    arguments = ["demo", "--out", str(out), "--quick", "--captioner", "attributes"]
    result = CliRunner().invoke(app, [*arguments, "--set", "stages.image.epochs=1"])
    assert result.exit_code == 0, result.output
    assert f"{out} holds an earlier demo: starting over (runs replaced)" in result.output
    assert not (out / "runs" / "old").exists()
    captions = json.loads((out / "results.json").read_text())["captions"]
    assert captions["captioner"] == "attributes" and captions["model"] is None
    # The attributes captioner renders the labels, so the audit must read them back exactly.
    assert captions["attribute_accuracy"] == 1.0


def test_quick_variant_only_shortens_the_run() -> None:
    settings = DemoSettings()
    quick = settings.quick()
    assert quick.ids < settings.ids
    assert quick.methods == settings.methods
    assert quick.caption_model == settings.caption_model
    assert any(item.startswith("stages.image.epochs=") for item in quick.overrides)


def test_unknown_captioner_is_refused_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--captioner", "foo"])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: unknown captioner 'foo': expected one of ('llava', 'attributes')"
    )
    assert not out.exists()
