"""The training loop on tiny runs: outputs, exact resume (in process and after SIGKILL), DDP."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tiny_runs import make_tiny_dataset, tiny_config, write_tiny_config
from vlreid.config import load_config
from vlreid.errors import ReIDError
from vlreid.model import WEIGHTS_FILE
from vlreid.training.checkpoint import STATE_FILE
from vlreid.training.data import ShuffledRows
from vlreid.training.loop import train
from vlreid.training.report import read_metrics

# Tiny models on shared cores: one intra-op thread (several spin-waiting OpenMP threads make every
# small op many times slower when the machine is busy). Subprocesses get OMP_NUM_THREADS=1.
torch.set_num_threads(1)
CLI = "import sys; from vlreid.cli import main; sys.argv[0] = 'reid'; main()"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "data")


def run_state(run_dir: Path) -> dict:
    return torch.load(run_dir / STATE_FILE, weights_only=True)


def assert_same_tensors(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    different = [key for key in first if not torch.equal(first[key], second[key])]
    assert not different, f"tensors differ: {different[:5]}"


def test_a_run_writes_its_config_metrics_curves_and_checkpoints(dataset: Path, tmp_path: Path):
    config = tiny_config(dataset, "baseline", overrides=("train.eval_at_start=true",))
    result = train(config, tmp_path / "run")

    run_dir = tmp_path / "run"
    for name in ("config.toml", "metrics.jsonl", "curves.png", WEIGHTS_FILE, STATE_FILE):
        assert (run_dir / name).is_file(), name
    assert load_config(run_dir / "config.toml") == config
    records = read_metrics(run_dir / "metrics.jsonl")
    assert [record["epoch"] for record in records] == [0, 1, 2]
    assert "loss" not in records[0] and 0 <= records[0]["mAP"] <= 1
    for record in records[1:]:
        assert record["stage"] == "image"
        assert {"loss", "id", "triplet", "mAP", "rank1", "mINP"} <= record.keys()
        assert record["images_per_second"] > 0
        assert set(record["lr"]) == {"model", "model.bias"}
    # cosine over 2 epochs, counted from 1 as CLIP-ReID's timm scheduler: 1/2, then 0
    assert records[1]["lr"]["model"] == pytest.approx(1e-3 * 0.5)
    assert records[2]["lr"]["model"] == pytest.approx(0.0, abs=1e-12)
    assert result.finished and result.epochs_run == 2
    assert result.scores == {key: records[-1][key] for key in result.scores}
    state = run_state(run_dir)
    position = (state["stage"], state["epoch"], state["step"], state["world_size"])
    assert position == ("image", 2, 4, 1)


def test_the_loop_never_reads_loss_terms_per_step(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MethodOutput.terms syncs with the device; the loop sums term_values there instead."""
    from vlreid.training.methods import MethodOutput

    def refuse(output: MethodOutput) -> dict[str, float]:
        raise AssertionError("MethodOutput.terms read during training")

    monkeypatch.setattr(MethodOutput, "terms", property(refuse))
    train(tiny_config(dataset, "clip-reid", epochs=1), tmp_path / "run")
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    assert [record["stage"] for record in records] == ["prompt", "image"]
    assert {"loss", "i2t", "t2i"} <= records[0].keys()
    assert {"loss", "id", "triplet", "i2tce"} <= records[1].keys()


def test_gradient_accumulation_steps_once_per_group_and_at_the_end_of_an_epoch(
    dataset: Path, tmp_path: Path
) -> None:
    config = tiny_config(dataset, "baseline", overrides=("train.gradient_accumulation_steps=3",))
    train(config, tmp_path / "run")
    # 2 batches per epoch, accumulation 3: one step per epoch, taken at the epoch's end
    assert run_state(tmp_path / "run")["step"] == 2


SCGI_REIMPLEMENTATION = (
    "method.token_weighting=elementwise",
    "method.mapper=relu3",
    "method.query_pooling=mean",
    "method.image_heads_lr=new",
)


@pytest.mark.parametrize(
    ("method", "overrides"),
    [("svll", ()), ("scgi", ()), ("scgi", SCGI_REIMPLEMENTATION)],
    ids=["svll", "scgi", "scgi-reimplementation-variants"],
)
def test_a_stopped_and_resumed_run_ends_bit_identical(
    dataset: Path, tmp_path: Path, method: str, overrides: tuple[str, ...]
) -> None:
    """svll: two stages and global random draws (masks, views); scgi: captions, one stage, with
    our switches and with the reimplementation's."""
    config = tiny_config(dataset, method, overrides=overrides)
    train(config, tmp_path / "full")
    parts = tmp_path / "parts"
    first = train(config, parts, max_epochs=1)  # stops in the middle of the first stage
    assert (first.finished, first.epochs_run) == (False, 1)
    if method == "svll":
        assert not train(config, parts, max_epochs=1).finished  # stops at the stage boundary
    assert train(config, parts).finished

    full_weights = load_file(tmp_path / "full" / WEIGHTS_FILE)
    assert_same_tensors(full_weights, load_file(parts / WEIGHTS_FILE))
    full_state, parts_state = run_state(tmp_path / "full"), run_state(parts)
    assert_same_tensors(full_state["method"], parts_state["method"])  # prompts and heads too
    full_records = read_metrics(tmp_path / "full" / "metrics.jsonl")
    parts_records = read_metrics(parts / "metrics.jsonl")
    assert [r["epoch"] for r in parts_records] == [r["epoch"] for r in full_records]
    for full_record, parts_record in zip(full_records, parts_records, strict=True):
        assert full_record["loss"] == parts_record["loss"]
        assert full_record.get("mAP") == parts_record.get("mAP")


def test_fp16_trains_on_cpu_with_a_scaler_that_a_resume_restores(
    dataset: Path, tmp_path: Path
) -> None:
    """fp16: autocast float16 and a GradScaler per stage (CLIP-ReID's precision), on CPU too;
    the scaler's state is in state.pt, and a resumed run equals an uninterrupted one."""
    # 3 epochs a stage: the cosine schedule's last epoch has a zero learning rate.
    config = tiny_config(dataset, "clip-reid", 3, ("train.mixed_precision=fp16",))
    train(config, tmp_path / "full")
    parts = tmp_path / "parts"
    train(config, parts, max_epochs=1)  # in the prompt stage
    train(config, parts, max_epochs=3)  # in the image stage: its scaler is saved
    saved = run_state(parts)
    assert saved["stage"] == "image" and saved["scaler"]["scale"] > 0
    assert set(saved["scaler"]) >= {"scale", "growth_factor", "_growth_tracker"}
    stopped = tmp_path / "stopped"
    shutil.copytree(parts, stopped)
    train(config, parts)
    assert_same_tensors(
        load_file(tmp_path / "full" / WEIGHTS_FILE), load_file(parts / WEIGHTS_FILE)
    )
    assert run_state(parts)["scaler"] == run_state(tmp_path / "full")["scaler"]
    records = read_metrics(parts / "metrics.jsonl")
    assert all(math.isfinite(record["loss"]) for record in records)
    assert [record["stage"] for record in records] == ["prompt"] * 3 + ["image"] * 3
    # The resume reads the saved scale: this tiny model's image-stage gradients overflow
    # float16 at the first scales (65536, halved at each skipped step, in both runs alike), so
    # from a saved scale of 2**40 every later step is skipped, and the weights differ.
    saved["scaler"]["scale"] = 2.0**40
    torch.save(saved, stopped / STATE_FILE)
    train(config, stopped)
    different = load_file(stopped / WEIGHTS_FILE)
    assert not all(torch.equal(different[k], v) for k, v in load_file(parts / WEIGHTS_FILE).items())


def test_a_finished_run_is_not_trained_again(dataset: Path, tmp_path: Path) -> None:
    config = tiny_config(dataset, "baseline", epochs=1, overrides=("train.rerank=true",))
    first = train(config, tmp_path / "run")
    assert 0 <= first.scores["mAP"] <= 1  # scored after k-reciprocal re-ranking
    again = train(config, tmp_path / "run")
    assert (again.finished, again.epochs_run) == (True, 0)
    assert len(read_metrics(tmp_path / "run" / "metrics.jsonl")) == 1


def test_resuming_with_another_method_config_is_refused(dataset: Path, tmp_path: Path) -> None:
    train(tiny_config(dataset, "baseline"), tmp_path / "run", max_epochs=1)
    changed = tiny_config(dataset, "baseline", overrides=("method.lr=0.5",))
    with pytest.raises(ReIDError, match=r"different \[method\] settings"):
        train(changed, tmp_path / "run")


def test_scgi_without_captions_is_refused_before_any_work(dataset: Path, tmp_path: Path) -> None:
    config = tiny_config(dataset, "scgi", overrides=("data.captions=",))
    with pytest.raises(ReIDError, match=r"'scgi' trains on captions but data.captions is empty"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    train(tiny_config(dataset, "baseline", epochs=1, overrides=("data.captions=",)), tmp_path / "b")


def test_shuffled_rows_are_seeded_per_epoch_and_split_between_ranks(dataset: Path) -> None:
    from vlreid.datasets import load_manifest

    train_rows = load_manifest("synthetic", dataset).frame.query("split == 'train'")
    single = ShuffledRows(train_rows, batch_size=4, seed=0)
    single.set_epoch(1)
    epoch_one = [batch["relpaths"] for batch in single]
    assert epoch_one == [batch["relpaths"] for batch in single]
    single.set_epoch(2)
    assert epoch_one != [batch["relpaths"] for batch in single]
    ranks = [ShuffledRows(train_rows, 4, 0, num_replicas=2, rank=rank) for rank in (0, 1)]
    for rank in ranks:
        rank.set_epoch(1)
    dealt = [path for rank in ranks for batch in rank for path in batch["relpaths"]]
    assert sorted(dealt) == sorted(path for batch in epoch_one for path in batch)
    assert len(set(dealt)) == len(dealt) == 16
    # 16 rows in batches of 6: the last partial batch is kept (CLIP-ReID's stage 1), every row
    # once; on 2 ranks the third batch has no partner and is dropped.
    partial = ShuffledRows(train_rows, batch_size=6, seed=0)
    partial.set_epoch(1)
    batches = [batch["relpaths"] for batch in partial]
    assert [len(batch) for batch in batches] == [6, 6, 4] and len(partial) == 3
    assert sorted(path for batch in batches for path in batch) == sorted(dealt)
    ranks = [ShuffledRows(train_rows, 6, 0, num_replicas=2, rank=rank) for rank in (0, 1)]
    for rank, shard in enumerate(ranks):
        shard.set_epoch(1)
        assert len(shard) == 1 and [batch["relpaths"] for batch in shard] == [batches[rank]]


def test_training_resizes_bicubic_and_evaluation_and_the_stage1_cache_bilinear(
    dataset: Path,
) -> None:
    from vlreid.training.data import (
        build_eval_shard,
        build_feature_loader,
        build_stage_loader,
        load_run_data,
    )

    config = tiny_config(dataset, "svll")  # its image stage also draws views
    data = load_run_data(config.data)
    train_set = build_stage_loader(config, "image", data).dataset
    evaluation_loaders = [build_feature_loader(config, data), build_eval_shard(config, data)[0]]
    for transform in (train_set.transform, train_set.view_transform):
        assert transform.preprocessing == config.model.train_preprocessing()
        assert transform.preprocessing.interpolation == "bicubic"
    for loader in evaluation_loaders:
        assert loader.dataset.transform.preprocessing == config.model.preprocessing()
        assert loader.dataset.transform.preprocessing.interpolation == "bilinear"


def run_cli(arguments: list[str], cwd: Path) -> subprocess.Popen:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *arguments],
        cwd=cwd,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_sigkilled_training_process_resumes_to_identical_weights(
    dataset: Path, tmp_path: Path
) -> None:
    """``reid train`` killed with SIGKILL after its first checkpoint, then resumed (in process:
    same single-threaded kernels) ends as an uninterrupted run."""
    config_path = write_tiny_config(tmp_path / "run.toml", dataset, "baseline", epochs=8)
    killed_dir = tmp_path / "killed"
    arguments = ["train", str(config_path), "--run-dir", str(killed_dir)]
    killed = run_cli([*arguments, "--set", "train.eval_every=0"], tmp_path)
    config = load_config(config_path, ["train.eval_every=0"])
    train(config, tmp_path / "reference")  # meanwhile, the uninterrupted run
    deadline = time.monotonic() + 240
    while not (killed_dir / STATE_FILE).exists() and killed.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, killed.stdout.read()
    assert 1 <= run_state(killed_dir)["epoch"] < 8

    resumed = train(config, killed_dir)
    assert resumed.finished and resumed.epochs_run < 8
    assert_same_tensors(
        load_file(tmp_path / "reference" / WEIGHTS_FILE), load_file(killed_dir / WEIGHTS_FILE)
    )
    epochs = [record["epoch"] for record in read_metrics(killed_dir / "metrics.jsonl")]
    assert epochs == list(range(1, 9))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_cpu_processes_train_and_evaluate(dataset: Path, tmp_path: Path) -> None:
    from vlreid.evaluation.features import checkpoint_features
    from vlreid.evaluation.metrics import evaluate_features
    from vlreid.model import load_model

    config = write_tiny_config(tmp_path / "run.toml", dataset, "baseline", epochs=2)
    script = tmp_path / "reid_cli.py"
    script.write_text("from vlreid.cli import main\n\nmain()\n")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
        str(script),
        "train",
        str(config),
        "--run-dir",
        str(tmp_path / "ddp"),
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    finished = subprocess.run(
        command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert finished.stdout.count("finished after 2 epoch(s)") == 1  # rank 0 only

    state = run_state(tmp_path / "ddp")
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    records = read_metrics(tmp_path / "ddp" / "metrics.jsonl")
    assert [record["epoch"] for record in records] == [1, 2]
    # 16 training images, P x K = 4 x 2: 2 batches per epoch, one per rank
    assert state["step"] == 2
    # the gathered features were scored in manifest order: one process scores the same
    model = load_model(tmp_path / "ddp" / WEIGHTS_FILE)
    arrays = checkpoint_features(model, "synthetic", dataset, num_workers=0)
    expected = evaluate_features(
        arrays["query_features"],
        arrays["gallery_features"],
        arrays["query_pids"],
        arrays["gallery_pids"],
        arrays["query_camids"],
        arrays["gallery_camids"],
    ).summary()
    for key, value in expected.items():
        assert records[-1][key] == pytest.approx(value, abs=1e-6)
    assert json.loads(json.dumps(records[-1]))  # plain JSON
