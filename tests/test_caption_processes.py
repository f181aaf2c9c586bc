"""``reid caption`` as real processes: killed with SIGKILL and resumed; two ranks under torchrun."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from vlreid.cli import app
from vlreid.synthetic import make_synthetic_dataset

ENTRY = "from vlreid.cli import main; main()"
SAFETY_TIMEOUT = 600  # seconds; only so that a hung child cannot hang the suite

torch.set_num_threads(1)  # the in-process resume: 2 threads on a busy 2-core machine crawl


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_dataset(root, ids=6, cameras=2, images_per_camera=2, height=64, width=32)
    return root


def all_relpaths(root: Path) -> list[str]:
    return sorted(path.relative_to(root).as_posix() for path in root.glob("*/*.jpg"))


def child_environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_sigkilled_run_resumes_with_every_image_once(synthetic, tiny_llava, tmp_path):
    out = tmp_path / "captions"
    arguments = [
        "caption", "--dataset", "synthetic", "--root", str(synthetic), "--out", str(out),
        "--model", str(tiny_llava), "--split", "all", "--batch-size", "2", "--shard-size", "2",
        "--max-new-tokens", "16", "--no-progress",
    ]  # fmt: skip
    child = subprocess.Popen(
        [sys.executable, "-c", ENTRY, *arguments],
        env=child_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + SAFETY_TIMEOUT
    while not list(out.glob("part-*.parquet")) and child.poll() is None:
        assert time.monotonic() < deadline, "no shard appeared"
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, f"the run ended before the kill: {stderr!r}"
    expected = all_relpaths(synthetic)
    before = pd.read_parquet(out)
    assert 0 < len(before) < len(expected)

    resumed = CliRunner().invoke(app, arguments)
    assert resumed.exit_code == 0, resumed.output
    assert f"({len(before)} already done)" in resumed.output
    captions = pd.read_parquet(out)
    assert sorted(captions["relpath"]) == expected  # every image exactly once
    assert not list(out.glob(".*.tmp"))


def test_two_ranks_under_torchrun_write_disjoint_shards(synthetic, tiny_llava, tmp_path):
    out = tmp_path / "captions"
    script = tmp_path / "reid_main.py"
    script.write_text(ENTRY + "\n")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            str(script),
            "caption",
            "--dataset",
            "synthetic",
            "--root",
            str(synthetic),
            "--out",
            str(out),
            "--model",
            str(tiny_llava),
            "--split",
            "all",
            "--batch-size",
            "4",
            "--max-new-tokens",
            "4",
            "--no-progress",
        ],  # fmt: skip
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=SAFETY_TIMEOUT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    expected = all_relpaths(synthetic)
    shards = sorted(path.name for path in out.glob("part-*.parquet"))
    assert shards == ["part-00000-00000.parquet", "part-00001-00000.parquet"]
    per_rank = [pd.read_parquet(out / name) for name in shards]
    assert not set(per_rank[0]["relpath"]) & set(per_rank[1]["relpath"])
    assert abs(len(per_rank[0]) - len(per_rank[1])) <= 1
    assert sorted(pd.read_parquet(out)["relpath"]) == expected
    # Rank 0 prints one summary, summed over both ranks.
    assert completed.stdout.count("images captioned") == 1
    assert f"{len(expected)} images captioned" in completed.stdout
