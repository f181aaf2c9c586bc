"""Commands typed from a working directory with relative paths, as a user types them.

Every other test passes absolute ``tmp_path`` folders; these ``cd`` into a temporary folder first:
caption -> train in-process, then ``evaluate --visualize`` as a real process started there, and
extract / evaluate --features / caption in-process (``reid demo`` with its relative default
``--out`` is in ``test_demo.py``). Processes cost about 15 CPU seconds of imports each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import typer
from typer.testing import CliRunner

from tiny_runs import make_tiny_dataset, write_tiny_config
from vlreid.cli import app
from vlreid.cli._command import ReIDCommand, ReIDGroup
from vlreid.training.report import read_metrics

torch.set_num_threads(1)
runner = CliRunner()
SAFETY_TIMEOUT = 600  # seconds; only so that a hung child cannot hang the suite


def reid(cwd: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    """``reid ARGUMENTS`` as a process started in ``cwd``."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "vlreid.cli", *arguments],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=environment,
        timeout=SAFETY_TIMEOUT,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``data/`` (tiny synthetic dataset) and ``run.toml`` whose data.root is the relative
    ``data``, then caption -> train -> evaluate as processes started in the folder."""
    base = tmp_path_factory.mktemp("workdir")
    make_tiny_dataset(base / "data")
    write_tiny_config(base / "run.toml", Path("data"), "scgi", epochs=2)
    assert 'root = "data"' in (base / "run.toml").read_text()
    return base


def test_caption_train_then_evaluate_visualize_as_a_process_with_relative_paths(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    # --captioner attributes on synthetic data reads data/attributes.parquet by default
    arguments = ["caption", "--dataset", "synthetic", "--root", "data", "--out", "caps"]
    captioned = runner.invoke(app, [*arguments, "--captioner", "attributes", "--no-progress"])
    assert captioned.exit_code == 0, captioned.output
    assert json.loads((workdir / "caps" / "_manifest.json").read_text())["root"] == str(
        (workdir / "data").resolve()
    )
    arguments = ["train", "run.toml", "--run-dir", "runs/scgi", "--set", "data.captions=caps"]
    trained = runner.invoke(app, arguments)
    assert trained.exit_code == 0, trained.output
    assert "finished after 2 epoch(s) in " + str(workdir / "runs" / "scgi") in trained.output
    config = (workdir / "runs" / "scgi" / "config.toml").read_text()
    assert f'root = "{workdir / "data"}"' in config  # resolved once, at loading
    assert f'captions = "{workdir / "caps"}"' in config

    # the command that printed no metrics (data/data/bounding_box_test/...), as a process
    evaluated = reid(workdir, "evaluate", "--checkpoint", "runs/scgi/model.safetensors",
                     "--dataset", "synthetic", "--root", "data", "--visualize", "3", "--out",
                     "pictures/ranked.png", "--num-workers", "0", "--format", "json")  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stderr
    scores = json.loads(evaluated.stdout)
    last = read_metrics(workdir / "runs" / "scgi" / "metrics.jsonl")[-1]
    assert scores["mAP"] == pytest.approx(last["mAP"], abs=1e-6)
    assert (workdir / "pictures" / "ranked.png").stat().st_size > 0


def test_extract_then_evaluate_features_with_relative_paths(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(workdir)
    if not (workdir / "runs" / "scgi" / "model.safetensors").is_file():
        pytest.skip("needs the run of the process test above")
    extracted = runner.invoke(app, ["extract", "--checkpoint", "runs/scgi/model.safetensors",
                                    "--dataset", "synthetic", "--root", "data", "--out",
                                    "features.npz", "--num-workers", "0"])  # fmt: skip
    assert extracted.exit_code == 0, extracted.output
    with np.load(workdir / "features.npz") as archive:
        assert all(Path(path).is_absolute() for path in archive["gallery_paths"])
        relative = {key: archive[key] for key in archive.files}
    for side in ("query", "gallery"):  # the same file with paths relative to data/
        relative[f"{side}_paths"] = np.array(
            [str(Path(path).relative_to(workdir / "data")) for path in relative[f"{side}_paths"]]
        )
    np.savez(workdir / "relative.npz", **relative)
    for arguments in (
        ["--features", "features.npz"],
        ["--features", "relative.npz", "--root", "data"],  # no doubled data/data/...
    ):
        result = runner.invoke(
            app, ["evaluate", *arguments, "--visualize", "2", "--out", "p.png", "--format", "json"]
        )
        assert result.exit_code == 0, result.output
        scores = json.loads(result.output)
        last = read_metrics(workdir / "runs" / "scgi" / "metrics.jsonl")[-1]
        assert scores["mAP"] == pytest.approx(last["mAP"], abs=1e-6)
    assert (workdir / "p.png").is_file()


def test_caption_show_from_a_relative_folder(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(workdir)
    arguments = ["caption", "--dataset", "synthetic", "--root", "./data/../data", "--out", "caps2"]
    result = runner.invoke(app, [*arguments, "--captioner", "attributes", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"captioned into {workdir / 'caps2'} " in result.output
    train_images = list((workdir / "data" / "bounding_box_train").glob("*.jpg"))
    assert len(pd.read_parquet(workdir / "caps2")) == len(train_images)
    shown = runner.invoke(app, ["captions", "show", "caps2", "--limit", "1"])
    assert shown.exit_code == 0, shown.output


def test_every_command_resolves_its_paths_and_shows_flags_as_flags() -> None:
    """Every command is a :class:`ReIDCommand` (absolute paths, flags), every group a
    :class:`ReIDGroup`; no help page shows a ``<bool>`` type."""
    root = typer.main.get_command(app)
    stack, commands = [root], []
    while stack:
        group = stack.pop()
        assert isinstance(group, ReIDGroup), group.name
        for command in group.commands.values():
            (stack if hasattr(command, "commands") else commands).append(command)
    assert {command.name for command in commands} >= {"caption", "train", "evaluate", "extract"}
    for command in commands:
        assert isinstance(command, ReIDCommand), command.name
    for arguments in (
        ["--help"],
        ["caption", "--help"],
        ["evaluate", "--help"],
        ["demo", "--help"],
    ):
        result = runner.invoke(app, arguments)
        assert result.exit_code == 0 and "<bool>" not in result.output, result.output
    data_load = runner.invoke(app, ["data", "load", "--help"]).output
    assert "--num-workers" in data_load and "--workers" not in data_load  # a hidden alias now
