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
from vlreid.errors import DataFileError, ReIDError
from vlreid.evaluation.feature_file import load_feature_file, save_feature_file
from vlreid.evaluation.metrics import evaluate_distmat, evaluate_features
from vlreid.evaluation.rerank import k_reciprocal_rerank
from vlreid.evaluation.visualize import CORRECT_COLOUR, WRONG_COLOUR, ranked_gallery
from vlreid.model import WEIGHTS_FILE

PIDS = 6
METRIC_NAMES = ("mAP", "rank1", "rank5", "rank10", "mINP")


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
    printed = json.loads(result.stdout)
    assert printed.pop("rerank") == {"k1": 5, "k2": 2, "lambda": 0.4}
    assert printed == pytest.approx(expected)


def test_rerank_without_a_run_config_uses_zhongs_parameters(tmp_path: Path) -> None:
    arrays = write_problem(tmp_path)
    default = k_reciprocal_rerank(arrays["query_features"], arrays["gallery_features"], 20, 6, 0.3)
    other = k_reciprocal_rerank(arrays["query_features"], arrays["gallery_features"], 50, 15, 0.3)
    expected = evaluate_distmat(default, *labels(arrays)).summary()
    assert expected != evaluate_distmat(other, *labels(arrays)).summary()  # the test can fail
    arguments = ["evaluate", "--features", str(tmp_path / "features.npz"), "--rerank"]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert "re-ranked with k1 20, k2 6, lambda 0.3 (by default)" in result.stdout
    assert f"{100 * expected['mAP']:6.2f}%" in result.stdout
    printed = json.loads(CliRunner().invoke(app, [*arguments, "--format", "json"]).stdout)
    assert printed.pop("rerank") == {"k1": 20, "k2": 6, "lambda": 0.3}
    assert printed == pytest.approx(expected)


RUN_RERANK = (3, 2, 0.5)
"""k1, k2, lambda that the tiny run's config records (and its in-training evaluation uses)."""


@pytest.fixture(scope="module")
def rerank_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny baseline trained one epoch whose config re-ranks with :data:`RUN_RERANK`; the
    k1, k2, lambda that reached k_reciprocal_rerank during training are recorded."""
    from tiny_runs import make_tiny_dataset, tiny_config
    from vlreid.evaluation import scoring
    from vlreid.training.loop import train

    base = tmp_path_factory.mktemp("rerank-run")
    data = make_tiny_dataset(base / "data")
    k1, k2, lambda_value = RUN_RERANK
    overrides = ("train.rerank=true", f"train.rerank_k1={k1}", f"train.rerank_k2={k2}")
    config = tiny_config(
        data, epochs=1, overrides=(*overrides, f"train.rerank_lambda={lambda_value}")
    )
    calls: list[tuple[int, int, float]] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scoring, "k_reciprocal_rerank", recording_rerank(calls))
        result = train(config, base / "run")
    return {"data": data, "weights": base / "run" / WEIGHTS_FILE, "scores": result.scores,
            "calls": calls}  # fmt: skip


def recording_rerank(calls: list[tuple[int, int, float]]):  # type: ignore[no-untyped-def]
    """k_reciprocal_rerank, appending the (k1, k2, lambda) of every call to ``calls``."""

    def rerank(*arguments: object, k1: int, k2: int, lambda_value: float, **options: object):  # type: ignore[no-untyped-def]
        calls.append((k1, k2, lambda_value))
        return k_reciprocal_rerank(*arguments, k1=k1, k2=k2, lambda_value=lambda_value, **options)

    return rerank


def direct_scores(rerank_run: dict, k1: int, k2: int, lambda_value: float) -> dict[str, float]:
    """The checkpoint's features re-ranked by calling k_reciprocal_rerank directly."""
    from vlreid.evaluation.features import checkpoint_features
    from vlreid.model import load_model

    arrays = checkpoint_features(load_model(rerank_run["weights"]), "synthetic", rerank_run["data"],
                                 num_workers=0)  # fmt: skip
    distmat = k_reciprocal_rerank(
        arrays["query_features"], arrays["gallery_features"], k1, k2, lambda_value
    )
    return evaluate_distmat(distmat, *labels(arrays)).summary()


def test_training_evaluates_with_the_configs_rerank_parameters(rerank_run: dict) -> None:
    assert rerank_run["calls"] == [RUN_RERANK]
    assert rerank_run["scores"] == pytest.approx(direct_scores(rerank_run, *RUN_RERANK))


@pytest.mark.parametrize(
    ("flags", "used", "described"),
    [
        ([], RUN_RERANK, "k1 3, k2 2, lambda 0.5 (from the run config)"),
        (["--k1", "5"], (5, 2, 0.5),
         "k1 5, k2 2, lambda 0.5 (k1 given; k2, lambda from the run config)"),
        (["--k1", "4", "--k2", "1", "--lambda", "0.2"], (4, 1, 0.2),
         "k1 4, k2 1, lambda 0.2 (given)"),
    ],
)  # fmt: skip
def test_checkpoint_rerank_takes_flags_then_the_run_config(
    rerank_run: dict, monkeypatch: pytest.MonkeyPatch, flags: list[str], used: tuple, described: str
) -> None:
    from vlreid.evaluation import scoring

    calls: list[tuple[int, int, float]] = []
    monkeypatch.setattr(scoring, "k_reciprocal_rerank", recording_rerank(calls))
    arguments = ["evaluate", "--checkpoint", str(rerank_run["weights"]), "--dataset",
                 "synthetic", "--root", str(rerank_run["data"]), "--num-workers", "0", "--rerank",
                 *flags]  # fmt: skip
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert f"re-ranked with {described}" in result.stdout
    result = CliRunner().invoke(app, [*arguments, "--format", "json"])
    printed = json.loads(result.stdout)
    assert printed.pop("rerank") == dict(zip(("k1", "k2", "lambda"), used, strict=True))
    assert calls == [used, used]
    assert {key: printed[key] for key in METRIC_NAMES} == pytest.approx(
        direct_scores(rerank_run, *used)
    )


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
        (["--features", "{tmp}/features.npz", "--k1", "50"],
         "--k1, --k2 and --lambda are re-ranking's parameters: add --rerank"),
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


def test_vehicleid_trials_average_random_galleries_as_the_protocol_does() -> None:
    from vlreid.evaluation.feature_file import EvaluationInputs
    from vlreid.evaluation.protocols import evaluate_vehicleid
    from vlreid.evaluation.scoring import (
        EvaluationOptions,
        RerankParameters,
        check_options,
        evaluate_inputs,
        format_report,
    )

    rng = np.random.default_rng(5)
    pids = np.repeat(np.arange(30), 4)
    features = (rng.normal(size=(30, 16))[pids] + rng.normal(size=(120, 16))).astype(np.float32)
    gallery = np.zeros(120, dtype=bool)
    gallery[::4] = True  # one draw: the first image of each vehicle
    inputs = EvaluationInputs(
        features[~gallery],
        features[gallery],
        pids[~gallery],
        pids[gallery],
        np.zeros((~gallery).sum(), dtype=np.int64),
        np.ones(gallery.sum(), dtype=np.int64),
    )
    report = evaluate_inputs(inputs, EvaluationOptions(vehicleid_trials=10, trial_seed=3))
    expected = evaluate_vehicleid(
        features[~gallery], features[gallery], pids[~gallery], pids[gallery], seed=3
    )
    assert report.result.mAP == expected.mAP
    np.testing.assert_array_equal(report.result.cmc, expected.cmc)
    single = evaluate_inputs(inputs, EvaluationOptions()).result
    assert single.mAP != report.result.mAP  # the trials are not the split's one draw
    assert json.loads(format_report(report, "json"))["trials"] == 10
    assert "the mean of 10 random one-per-vehicle galleries" in format_report(report)
    with pytest.raises(ReIDError, match="add --trials 0 to re-rank the split"):
        check_options(EvaluationOptions(vehicleid_trials=10, rerank=RerankParameters(20, 6, 0.3)))


def test_trials_need_vehicleid(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["evaluate", "--features", str(tmp_path / "f.npz"), "--trials", "5"],
    )
    assert result.exit_code == 2
    assert "--trials is VehicleID's protocol: it needs --dataset vehicleid" in result.stderr
