"""``reid caption`` and ``reid captions show|audit`` end to end on ``reid data synth`` output."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from vlreid.captioning.shards import SHARD_SCHEMA, STATUSES
from vlreid.cli import app

torch.set_num_threads(1)
runner = CliRunner()


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    result = runner.invoke(
        app,
        ["data", "synth", "--out", str(root), "--ids", "6", "--cameras", "2",
         "--images-per-camera", "2", "--height", "64", "--width", "32"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return root


def invoke(*arguments: str | Path):
    return runner.invoke(app, [str(argument) for argument in arguments])


def assert_one_line_error(result, expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and expected in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_attributes_captions_show_and_audit(synthetic, tmp_path):
    out = tmp_path / "captions"
    labels = synthetic / "attributes.parquet"
    result = invoke(
        "caption", "--dataset", "synthetic", "--root", synthetic, "--out", out,
        "--captioner", "attributes", "--attributes", labels, "--split", "all", "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    images = len(list(synthetic.glob("*/*.jpg")))
    assert f"{images} images captioned" in result.output
    assert f"{images} ok, 0 repaired, 0 unparsed, 0 image errors" in result.output
    captions = pd.read_parquet(out)
    assert list(captions.columns) == SHARD_SCHEMA.names and len(captions) == images

    shown = invoke("captions", "show", out, "--pid", "2", "--limit", "2")
    assert shown.exit_code == 0, shown.output
    assert "A photo of" in shown.output and shown.output.count("│ 2 ") == 2

    audited = invoke("captions", "audit", out, "--attributes", labels, "--format", "json")
    assert audited.exit_code == 0, audited.output
    report = json.loads(audited.output)
    assert report["rows"] == images and report["overall"] == 1.0
    assert [entry["field"] for entry in report["fields"]][:2] == ["gender", "age"]
    table = invoke("captions", "audit", out, "--attributes", labels)
    assert table.exit_code == 0 and "upper_color" in table.output and "overall" in table.output
    unknown = invoke("captions", "audit", out, "--attributes", labels, "--format", "yaml")
    assert unknown.exit_code == 2 and "unknown format 'yaml'" in unknown.output


def test_llava_captions_of_the_train_split(synthetic, tiny_llava, tmp_path):
    out = tmp_path / "captions"
    result = invoke(
        "caption", "--dataset", "synthetic", "--root", synthetic, "--out", out,
        "--model", tiny_llava, "--batch-size", "4", "--max-new-tokens", "8", "--shard-size", "4",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    captions = pd.read_parquet(out)
    train = sorted(path.relative_to(synthetic).as_posix() for path in
                   (synthetic / "bounding_box_train").glob("*.jpg"))  # fmt: skip
    assert sorted(captions["relpath"]) == train
    assert set(captions["status"]) <= set(STATUSES) - {"image_error"}
    assert set(captions["model"]) == {str(tiny_llava)}
    assert captions["raw"].str.len().gt(0).all()
    assert json.loads((out / "_manifest.json").read_text())["settings"]["max_new_tokens"] == 8
    assert "images/s" in result.output


def test_user_errors_are_one_line(synthetic, tiny_llava, tmp_path):
    missing = invoke(
        "caption", "--dataset", "synthetic", "--root", synthetic, "--out", tmp_path / "a",
        "--model", tmp_path / "no-such-model",
    )  # fmt: skip
    assert_one_line_error(missing, "model folder not found")

    empty_root = tmp_path / "empty"
    for folder in ("bounding_box_train", "query", "bounding_box_test"):
        (empty_root / folder).mkdir(parents=True)
    empty = invoke(
        "caption", "--dataset", "market1501", "--root", empty_root, "--out", tmp_path / "b",
        "--captioner", "attributes", "--attributes", synthetic / "attributes.parquet",
    )  # fmt: skip
    assert_one_line_error(empty, "no image to caption in split(s) train")

    out = tmp_path / "c"
    first = invoke(
        "caption", "--dataset", "synthetic", "--root", synthetic, "--out", out,
        "--captioner", "attributes", "--attributes", synthetic / "attributes.parquet",
    )  # fmt: skip
    assert first.exit_code == 0, first.output
    foreign = invoke(
        "caption", "--dataset", "synthetic", "--root", synthetic, "--out", out,
        "--model", tiny_llava, "--max-new-tokens", "4",
    )  # fmt: skip
    assert_one_line_error(foreign, "was written by another run")
    no_shards = invoke("captions", "show", tmp_path / "nothing-here")
    assert_one_line_error(no_shards, "no caption shards")
