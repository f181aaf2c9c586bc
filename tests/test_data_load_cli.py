"""End to end: ``reid data synth`` then one epoch of ``reid data load`` on it."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from vlreid.cli import app
from vlreid.datasets import load_manifest


def test_synth_then_one_epoch_of_the_loader(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "synthetic"
    options = ["--out", str(out), "--ids", "8", "--cameras", "2", "--seed", "3"]
    result = runner.invoke(app, ["data", "synth", *options])
    assert result.exit_code == 0, result.output

    options = ["--dataset", "synthetic", "--root", str(out), "--workers", "0"]
    sizes = ["--batch-size", "8", "--num-instances", "2"]
    result = runner.invoke(app, ["data", "load", *options, *sizes, "--cache", "memory"])
    assert result.exit_code == 0, result.output

    # The epoch length follows from the parsed train split: sum_i max(n_i, K) // K chunks, P = 4.
    train = load_manifest("synthetic", out).frame.query("split == 'train'")
    chunks = sum(max(count, 2) // 2 for count in train["pid"].value_counts())
    batches = chunks // 4
    pattern = r"(\d+) images in (\d+) batches over 1 epoch\(s\): (\d+) images/s"
    match = re.search(pattern, result.output)
    assert match is not None, result.output
    assert (int(match[1]), int(match[2])) == (batches * 8, batches)
    assert int(match[3]) > 0
