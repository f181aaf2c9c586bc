"""``reid evaluate --features``: the table, JSON, re-ranking, the picture and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from vlreid.cli import app
from vlreid.errors import DataFileError
from vlreid.evaluation.feature_file import load_feature_file, save_feature_file
from vlreid.evaluation.metrics import evaluate_distmat, evaluate_features
from vlreid.evaluation.rerank import k_reciprocal_rerank
from vlreid.evaluation.visualize import CORRECT_COLOUR, WRONG_COLOUR, ranked_gallery

PIDS = 6


@pytest.fixture(autouse=True)
def one_thread():  # type: ignore[no-untyped-def]
    """Small tensors on a shared, busy machine run faster (and steadier) on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_problem(folder: Path, relative_paths: bool = True) -> dict[str, np.ndarray]:
    """Clustered features of 6 identities (3 queries, 8 gallery images each, some distractors)
    with one small image per item, written as ``folder / features.npz``."""
    rng = np.random.default_rng(0)
    q_pids = np.repeat(np.arange(1, PIDS + 1), 3)
    g_pids = np.concatenate([np.repeat(np.arange(1, PIDS + 1), 8), np.zeros(6, np.int64)])
    centres = rng.normal(size=(PIDS + 1, 16))
    arrays: dict[str, np.ndarray] = {}
    for side, pids in (("query", q_pids), ("gallery", g_pids)):
        features = centres[pids] + 0.8 * rng.normal(size=(len(pids), 16))
        camids = rng.integers(0, 3, len(pids)) if side == "gallery" else np.zeros(len(pids), int)
        paths = []
        for index, pid in enumerate(pids):
            relpath = f"{side}/{pid:04d}_{index:03d}.png"
            colour = tuple(int(channel) for channel in rng.integers(0, 255, 3))
            (folder / side).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (32, 64), colour).save(folder / relpath)
            paths.append(relpath if relative_paths else str(folder / relpath))
        arrays[f"{side}_features"] = features.astype(np.float32)
        arrays[f"{side}_pids"] = pids
        arrays[f"{side}_camids"] = camids
        arrays[f"{side}_paths"] = np.array(paths)
    save_feature_file(folder / "features.npz", arrays)
    return arrays


def labels(arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    keys = ("query_pids", "gallery_pids", "query_camids", "gallery_camids")
    return tuple(arrays[key] for key in keys)


def test_table_and_json_report_the_metrics(tmp_path: Path) -> None:
    arrays = write_problem(tmp_path)
    expected = evaluate_features(
        arrays["query_features"], arrays["gallery_features"], *labels(arrays)
    ).summary()
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", "--features", str(tmp_path / "features.npz")])
    assert result.exit_code == 0, result.output
    assert "18 queries (18 valid" in result.output and "54 gallery items" in result.output
    assert f"{100 * expected['mAP']:6.2f}%" in result.output
    assert f"{100 * expected['mINP']:6.2f}%" in result.output
    result = runner.invoke(
        app, ["evaluate", "--features", str(tmp_path / "features.npz"), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert list(printed) == ["mAP", "rank1", "rank5", "rank10", "mINP"]
    assert printed == pytest.approx(expected)
    assert 0.2 < printed["mAP"] < 1.0


def test_rerank_option_evaluates_reranked_distances(tmp_path: Path) -> None:
    arrays = write_problem(tmp_path)
    distmat = k_reciprocal_rerank(
        arrays["query_features"], arrays["gallery_features"], k1=5, k2=2, lambda_value=0.4
    )
    expected = evaluate_distmat(distmat, *labels(arrays)).summary()
    options = ["--rerank", "--k1", "5", "--k2", "2", "--lambda", "0.4", "--format", "json"]
    result = CliRunner().invoke(
        app, ["evaluate", "--features", str(tmp_path / "features.npz"), *options]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == pytest.approx(expected)


def test_visualize_writes_framed_ranked_lists(tmp_path: Path) -> None:
    write_problem(tmp_path)
    picture = tmp_path / "pictures" / "ranked.png"
    arguments = ["evaluate", "--features", str(tmp_path / "features.npz"), "--visualize", "5"]
    arguments += ["--visualize-queries", "4", "--root", str(tmp_path), "--out", str(picture)]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert f"ranked lists: {picture}" in result.output
    with Image.open(picture) as image:
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    for colour in (CORRECT_COLOUR, WRONG_COLOUR):
        rgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(pixels - rgb).sum(1) < 30).sum() > 100, colour  # frames of that colour


def test_ranked_gallery_skips_same_camera_matches_and_keeps_ties_stable() -> None:
    distances = torch.tensor([0.5, 0.1, 0.5, 0.3, 0.5])
    g_pids, g_camids = np.array([7, 7, 8, 7, 9]), np.array([1, 0, 1, 1, 0])
    indices, correct = ranked_gallery(distances, 7, 0, g_pids, g_camids, top_k=3)
    assert indices.tolist() == [3, 0, 2]  # item 1 (pid 7, camera 0) left out; ties by index
    assert correct.tolist() == [True, True, False]


def test_absolute_paths_need_no_root(tmp_path: Path) -> None:
    write_problem(tmp_path, relative_paths=False)
    arguments = ["evaluate", "--features", str(tmp_path / "features.npz"), "--visualize", "2"]
    result = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / "p.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p.png").is_file()
    assert load_feature_file(tmp_path / "features.npz").query_paths[0].startswith(str(tmp_path))


def broken(arrays: dict[str, np.ndarray], key: str, value: np.ndarray | None):  # type: ignore[no-untyped-def]
    arrays = dict(arrays)
    if value is None:
        del arrays[key]
    else:
        arrays[key] = value
    return arrays


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("gallery_pids", np.arange(5)), "gallery_pids must be 54 integers"),
        (("query_camids", None), "missing key(s) query_camids"),
        (("gallery_features", np.zeros((0, 16), np.float32)), "gallery_features is empty"),
        (("query_features", np.zeros((18, 4), np.float32)), "4 dimensions but gallery"),
        (("query_pids", np.linspace(0, 1, 18)), "query_pids must be 18 integers"),
    ],
)
def test_bad_feature_files_give_one_line(tmp_path: Path, change: tuple, message: str) -> None:
    arrays = write_problem(tmp_path)
    path = tmp_path / "bad.npz"
    np.savez(path, **broken(arrays, *change))
    result = CliRunner().invoke(app, ["evaluate", "--features", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith(f"error: {path}: ") and message in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--features", "{tmp}/missing.npz"], "missing.npz: no such features file"),
        (["--features", "{tmp}/not_npz.npz"], "cannot be read as an .npz archive"),
        ([], "give the features to evaluate: --features FILE.npz"),
        (["--features", "{tmp}/features.npz", "--visualize", "3"], "relative paths"),
        (["--features", "{tmp}/features.npz", "--format", "xml"], "unknown format 'xml'"),
        (["--features", "{tmp}/features.npz", "--metric", "l1"], "unknown metric 'l1'"),
        (["--features", "{tmp}/features.npz", "--rerank", "--rerank-memory-gb", "0.001"],
         "above the limit of 0.0 GiB"),
    ],
)  # fmt: skip
def test_bad_arguments_give_one_line(tmp_path: Path, arguments: list[str], message: str) -> None:
    write_problem(tmp_path)
    (tmp_path / "not_npz.npz").write_text("plain text")
    arguments = [argument.replace("{tmp}", str(tmp_path)) for argument in arguments]
    result = CliRunner().invoke(app, ["evaluate", *arguments])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.output


def test_feature_file_round_trip_and_single_array(tmp_path: Path) -> None:
    arrays = write_problem(tmp_path)
    loaded = load_feature_file(tmp_path / "features.npz")
    for key, value in arrays.items():
        np.testing.assert_array_equal(loaded.as_arrays()[key], value)
    assert loaded.query_features.dtype == np.float32 and loaded.query_pids.dtype == np.int64
    np.save(tmp_path / "single.npy", arrays["query_features"])
    with pytest.raises(DataFileError, match="single array, expected an .npz archive"):
        load_feature_file(tmp_path / "single.npy")
