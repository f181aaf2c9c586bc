"""``benchmarks/methods.py --quick``: cells train, rows pair with baseline, reruns skip."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "methods.py"


def load_bench():  # noqa: ANN201 - a module object
    spec = importlib.util.spec_from_file_location("bench_methods", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_shuffled_captions_come_from_another_identity(tmp_path: Path) -> None:
    bench = load_bench()
    source = tmp_path / "source"
    source.mkdir()
    frame = pd.DataFrame(
        {
            "relpath": [f"{i}.jpg" for i in range(8)],
            "pid": [1, 1, 2, 2, 3, 3, 4, 4],
            "caption": ["one", "one", "two", "two", "three", "three", "four", "four"],
        }
    )
    frame.to_parquet(source / "part-00000.parquet")
    bench.shuffle_captions(source, tmp_path / "shuffled", seed=0)
    shuffled = pd.read_parquet(tmp_path / "shuffled")
    own = dict(zip(frame["pid"], frame["caption"], strict=True))
    assert list(shuffled["relpath"]) == list(frame["relpath"])
    assert all(
        caption != own[pid]
        for pid, caption in zip(shuffled["pid"], shuffled["caption"], strict=True)
    )
    assert shuffled.groupby("pid")["caption"].nunique().eq(1).all()  # one donor per identity
    assert sorted(set(shuffled["caption"])) == sorted(set(frame["caption"]))


def test_quick_bench_writes_a_paired_table_and_resumes(tmp_path: Path) -> None:
    bench = load_bench()
    rows = ["baseline (pretrained)", "scgi captions=shuffled"]
    arguments = ["--out", str(tmp_path), "--quick", "--seeds", "0", "1", "--rows", *rows]
    text = bench.main(arguments)
    lines = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines()[2:]}
    assert set(lines) == set(rows)
    assert "| 2/2 |" in lines["baseline (pretrained)"]
    assert lines["scgi captions=shuffled"].count("±") == 4  # mAP, rank-1 and both differences
    results = sorted((tmp_path / "cells").glob("*/seed*/result.json"))
    assert len(results) == 4
    stamps = [path.stat().st_mtime_ns for path in results]
    assert bench.main(arguments) == text  # every cell skipped: same figures
    assert [path.stat().st_mtime_ns for path in results] == stamps
    assert (tmp_path / "table.md").read_text() == text
