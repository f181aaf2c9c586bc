"""``reid data stats`` end to end through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from skeleton_trees import touch_all, write_small_msmt17
from vlreid.cli import app

# 3 train ids over 2 cameras; 2 query ids; gallery: 2 ids + distractor 0, 3 cameras, 1 junk box.
NAMES = {
    "bounding_box_train": [
        "0002_c1s1_000001_00.jpg",
        "0002_c2s1_000002_00.jpg",
        "0004_c1s1_000003_00.jpg",
        "0009_c2s1_000004_00.jpg",
    ],
    "query": ["0010_c1s1_000005_00.jpg", "0011_c2s1_000006_00.jpg"],
    "bounding_box_test": [
        "0010_c2s1_000007_00.jpg",
        "0011_c3s1_000008_00.jpg",
        "0011_c1s1_000009_00.jpg",
        "0000_c1s1_000010_00.jpg",
        "-1_c1s1_000011_00.jpg",
    ],
}
EXPECTED = {
    "train": {"ids": 3, "images": 4, "cameras": 2},
    "query": {"ids": 2, "images": 2, "cameras": 2},
    "gallery": {"ids": 3, "images": 4, "cameras": 3},
}


@pytest.fixture
def market_parent(tmp_path: Path) -> Path:
    for folder, names in NAMES.items():
        touch_all(tmp_path / "Market-1501-v15.09.15" / folder, names)
    return tmp_path


def test_stats_json_and_table(market_parent: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "data",
            "stats",
            "--dataset",
            "market1501",
            "--root",
            str(market_parent),
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == EXPECTED

    result = runner.invoke(
        app, ["data", "stats", "--dataset", "market1501", "--root", str(market_parent)]
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"market1501 at {market_parent / 'Market-1501-v15.09.15'}"
    assert [line.split("|")[0].strip() for line in lines if "|" in line] == [
        "subset",
        "train",
        "query",
        "gallery",
    ]
    gallery = next(line for line in lines if line.strip().startswith("gallery"))
    assert [int(cell) for cell in gallery.split("|")[1:]] == [3, 4, 3]


def test_stats_msmt17_train_val_flag(tmp_path: Path) -> None:
    write_small_msmt17(tmp_path / "MSMT17_V1")
    runner = CliRunner()
    base = ["data", "stats", "--dataset", "msmt17", "--root", str(tmp_path), "--format", "json"]
    plain = json.loads(runner.invoke(app, base).stdout)
    with_val = json.loads(runner.invoke(app, [*base, "--train-val"]).stdout)
    assert (plain["train"]["images"], with_val["train"]["images"]) == (3, 4)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--dataset", "market1501", "--root", "{tmp}/nowhere"], "no market1501 dataset under"),
        (["--dataset", "market", "--root", "{tmp}"], "unknown dataset 'market'"),
        (["--dataset", "market1501", "--root", "{tmp}", "--variant", "labeled"], "variant"),
        (["--dataset", "market1501", "--root", "{tmp}", "--format", "xml"], "unknown format"),
    ],
)
def test_user_errors_print_one_line_and_exit_2(
    tmp_path: Path, arguments: list[str], expected: str
) -> None:
    result = CliRunner().invoke(
        app, ["data", "stats", *(a.replace("{tmp}", str(tmp_path)) for a in arguments)]
    )
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert result.stderr.startswith("error: ") and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
