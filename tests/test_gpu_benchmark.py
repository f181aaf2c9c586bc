"""benchmarks/gpu.py runs every part at toy sizes on a CPU, so that it cannot rot before a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the toy run is the CPU path")
def test_toy_run_measures_every_part(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    environment = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1] / "src")}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--json", str(out)],
        capture_output=True, text=True, cwd=tmp_path, env=environment, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(out.read_text())
    assert summary["toy"] and summary["device"] == "cpu"
    rows = summary["rows"]
    captions = [row for row in rows if row["part"] == "caption" and "skipped" not in row]
    assert [row["batch"] for row in captions] == [1, 4, 8]
    assert all(row["images_per_second"] > 0 for row in captions)
    assert {row["precision"]: row["skipped"] for row in rows if "skipped" in row} == {
        "4-bit": "needs CUDA"
    }
    stages = {(row["method"], row["stage"]) for row in rows if row["part"] == "train"}
    assert {method for method, _ in stages} == {"baseline", "clip-reid", "svll", "scgi"}
    assert len(stages) == 6  # clip-reid and svll have two stages
    assert all(
        row["images_per_second"] > 0 and row["loader_images_per_second"] > 0
        for row in rows
        if row["part"] == "train"
    )
    (evaluation,) = [row for row in rows if row["part"] == "evaluate"]
    assert evaluation["size"] == "toy" and 0 < evaluation["mAP"] < 1
    assert evaluation["seconds"] > 0 and evaluation["gemm_seconds"] > 0
    for line in ("caption bf16   batch   1", "train   scgi", "evaluate toy"):
        assert line in done.stdout
