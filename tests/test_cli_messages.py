"""Every user mistake gives exit 2 and one ``error:`` line naming the path or key; Ctrl-C gives
one line and exit 130; cheap checks run before the expensive work."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from tiny_runs import make_tiny_dataset, write_tiny_config
from vlreid.cli import app
from vlreid.errors import DataFileError, ReIDError
from vlreid.model import WEIGHTS_FILE

torch.set_num_threads(1)
runner = CliRunner()
SAFETY_TIMEOUT = 600  # seconds; only so that a hung child cannot hang the suite


def error_line(arguments: list[str]) -> str:
    """The one line a failing command printed (asserting exit 2 and a single ``error:`` line)."""
    result = runner.invoke(app, [str(argument) for argument in arguments])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny dataset and a baseline trained for one epoch on it."""
    base = tmp_path_factory.mktemp("messages")
    data = make_tiny_dataset(base / "data")
    config = write_tiny_config(base / "baseline.toml", data, "baseline", epochs=1)
    result = runner.invoke(app, ["train", str(config), "--run-dir", str(base / "run")])
    assert result.exit_code == 0, result.output
    return {"base": base, "data": data, "config": config, "run": base / "run"}


def test_an_unreadable_image_in_a_loader_worker_is_one_line(run, tmp_path) -> None:
    """Default num_workers of evaluate and extract is 2: the worker's traceback is not shown."""
    data = tmp_path / "data"
    shutil.copytree(run["data"], data)
    broken = sorted((data / "bounding_box_test").glob("*.jpg"))[3]
    broken.write_bytes(b"not a jpeg")
    weights = run["run"] / WEIGHTS_FILE
    line = error_line(["evaluate", "--checkpoint", weights, "--dataset", "synthetic",
                       "--root", data, "--num-workers", "2"])  # fmt: skip
    assert line == f"error: cannot read image {broken}: cannot identify image file '{broken}'"
    line = error_line(["extract", "--checkpoint", weights, "--images", data / "bounding_box_test",
                       "--out", tmp_path / "f.npz"])  # fmt: skip
    assert line == f"error: cannot read image {broken}: cannot identify image file '{broken}'"


def test_the_resume_state_is_refused_with_the_weights_beside_it(run) -> None:
    state = run["run"] / "state.pt"
    line = error_line(["evaluate", "--checkpoint", state, "--dataset", "synthetic",
                       "--root", run["data"]])  # fmt: skip
    assert line == (
        f"error: {state} is the resume state of reid train, not inference weights: pass the "
        f"model.safetensors beside it ({run['run'] / WEIGHTS_FILE})"
    )


def test_a_bad_metric_or_format_is_refused_before_any_extraction(run, monkeypatch) -> None:
    def no_extraction(*arguments: object, **options: object) -> None:
        raise AssertionError("features were extracted before the options were checked")

    monkeypatch.setattr("vlreid.evaluation.features.checkpoint_inputs", no_extraction)
    arguments = ["evaluate", "--checkpoint", run["run"] / WEIGHTS_FILE, "--dataset",
                 "synthetic", "--root", run["data"]]  # fmt: skip
    assert error_line([*arguments, "--metric", "cosinus"]) == (
        "error: unknown metric 'cosinus' (--metric); expected one of euclidean, cosine"
    )
    assert error_line([*arguments, "--format", "yaml"]) == (
        "error: unknown format 'yaml' (--format); expected one of table, json"
    )


def test_protocol_options_reach_the_dataset_parser(run) -> None:
    """--variant / --test-size / --seed are passed to the parser, which refuses them here."""
    arguments = ["evaluate", "--checkpoint", run["run"] / WEIGHTS_FILE, "--dataset",
                 "synthetic", "--root", run["data"], "--num-workers", "0"]  # fmt: skip
    assert error_line([*arguments, "--variant", "detected"]) == (
        "error: unknown option(s) variant for dataset synthetic; valid: none"
    )
    assert error_line([*arguments, "--test-size", "800", "--seed", "1"]) == (
        "error: unknown option(s) seed, test_size for dataset synthetic; valid: none"
    )


def test_config_errors_name_their_source_and_the_closest_key(run, tmp_path) -> None:
    arguments = ["train", run["config"], "--run-dir", tmp_path / "never"]
    assert error_line([*arguments, "--set", "nosuch.key=1"]) == (
        "error: --set nosuch.key=1: unknown key 'nosuch' (valid keys: data, model, method, "
        "stages, train)"
    )
    line = error_line([*arguments, "--set", "data.batch_sise=4"])
    assert line.startswith(
        "error: --set data.batch_sise=4: unknown key 'batch_sise' in [data]; did you mean "
        "'batch_size'? (valid keys: dataset, root,"
    )
    typo = tmp_path / "typo.toml"
    typo.write_text(run["config"].read_text().replace("num_instances", "num_instance"))
    assert error_line(["train", typo, "--run-dir", tmp_path / "never"]).startswith(
        f"error: config {typo}: unknown key 'num_instance' in [data]; did you mean 'num_instances'?"
    )
    assert not (tmp_path / "never").exists()


def test_an_impossible_batch_is_refused_before_the_initial_evaluation(run, tmp_path) -> None:
    run_dir = tmp_path / "run"
    line = error_line(["train", run["config"], "--run-dir", run_dir, "--set",
                       "data.batch_size=16", "--set", "train.eval_at_start=true"])  # fmt: skip
    assert line == (
        "error: stage image: 4 identities cannot fill batches of P=8 distinct identities (batch "
        "size 16 / num_instances 2); lower data.batch_size (or stages.image.batch_size)"
    )
    assert not (run_dir / "metrics.jsonl").exists()  # no evaluation ran


def test_ctrl_c_during_training_says_what_was_saved_and_exits_130(run, tmp_path) -> None:
    """A real SIGINT to a ``reid train`` process, after its first epoch was saved."""
    config = write_tiny_config(tmp_path / "long.toml", run["data"], "baseline", epochs=500)
    run_dir = tmp_path / "run"
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    arguments = [sys.executable, "-m", "vlreid.cli", "train", str(config), "--run-dir",
                 str(run_dir), "--set", "train.eval_every=0"]  # fmt: skip
    process = subprocess.Popen(
        arguments, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
    )
    try:
        deadline = time.monotonic() + SAFETY_TIMEOUT
        while not (run_dir / "state.pt").is_file() and process.poll() is None:
            assert time.monotonic() < deadline, "no epoch was saved"
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=SAFETY_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(f"interrupted: {run_dir} holds the run after epoch ")
    assert last.endswith(" (state.pt); run the same command to resume from there")
    assert "Traceback" not in stderr


def test_ctrl_c_before_anything_was_saved(run, tmp_path, monkeypatch) -> None:
    def interrupted(*arguments: object, **options: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("vlreid.training.loop.train", interrupted)
    run_dir = tmp_path / "fresh"
    result = runner.invoke(app, ["train", str(run["config"]), "--run-dir", str(run_dir)])
    assert result.exit_code == 130
    assert result.stderr.strip() == (
        f"interrupted before the first epoch ended: nothing to resume in {run_dir}"
    )


def test_ctrl_c_while_captioning_says_what_is_kept(run, tmp_path, monkeypatch) -> None:
    def interrupted(*arguments: object, **options: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("vlreid.captioning.run.caption_dataset", interrupted)
    out = tmp_path / "captions"
    arguments = ["caption", "--dataset", "synthetic", "--root", str(run["data"]), "--out", str(out)]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 130
    assert result.stderr.strip() == (
        f"interrupted: {out} keeps its 0 finished shard(s) (the rows of the shard being filled "
        "are lost); run the same command to caption the rest"
    )


def test_an_unreachable_hub_id_fails_at_once_with_how_to_pass_a_folder(run, monkeypatch) -> None:
    """No network: the Hub's answer is simulated (offline mode, a connection error, no such
    repository); loading then reads the local cache only, which lacks the id."""
    import huggingface_hub
    from huggingface_hub import constants

    model_id = "vlreid-tests/no-such-model"
    arguments = ["caption", "--dataset", "synthetic", "--root", run["data"], "--out",
                 run["base"] / "never", "--model", model_id]  # fmt: skip
    expected_end = (
        f"and it is not in the local Hugging Face cache; pass a local folder instead (--model "
        f"DIR, a folder written by save_pretrained, e.g. `hf download {model_id} --local-dir "
        "DIR` on a machine with network)"
    )
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    line = error_line(arguments)
    assert line == f"error: cannot load model {model_id}: HF_HUB_OFFLINE is set {expected_end}"

    def unreachable(*arguments: object, **options: object) -> None:
        raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "model_info", unreachable)
    assert error_line(arguments) == (
        f"error: cannot load model {model_id}: the Hugging Face Hub cannot be reached "
        f"(ConnectionError: [Errno -2] Name or service not known) {expected_end}"
    )

    def not_found(*arguments: object, **options: object) -> None:
        from huggingface_hub.errors import RepositoryNotFoundError

        error = RepositoryNotFoundError.__new__(RepositoryNotFoundError)  # needs no response
        Exception.__init__(error, "404 Client Error: Repository Not Found")
        raise error

    monkeypatch.setattr(huggingface_hub, "model_info", not_found)
    assert error_line(arguments) == (
        f"error: no model {model_id} on the Hugging Face Hub (a private one needs `hf auth "
        "login`); check the id, or pass a local folder written by save_pretrained"
    )
    assert not (run["base"] / "never").exists()


def test_pretrained_weights_that_cannot_be_had_are_one_line(run, monkeypatch) -> None:
    """``model.pretrained`` of the paper configs (``openai``) without network, a missing file, a
    file of another architecture, and an unknown tag; the Hub's answer is simulated."""
    import huggingface_hub
    from huggingface_hub import constants

    base = run["base"]

    def train_line(pretrained: str) -> str:
        return error_line(["train", run["config"], "--run-dir", base / "never",
                           "--set", f"model.pretrained={pretrained}"])  # fmt: skip

    instead = (
        "give a local weights file instead (model.pretrained = FILE: OpenAI's ViT-B-16.pt, or "
        "open_clip's open_clip_pytorch_model.bin or open_clip_model.safetensors), or none for a "
        "random initialisation"
    )
    repo = "timm/vit_base_patch16_clip_224.openai"
    not_cached = (
        "and open_clip's ViT-B-16 weights 'openai' are not in the local Hugging Face cache (`hf "
        f"download {repo} open_clip_model.safetensors --local-dir DIR` fetches them where there "
        f"is network); {instead}"
    )
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(base / "empty-hub-cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    line = train_line("openai")
    assert line == f"error: model.pretrained = 'openai': HF_HUB_OFFLINE is set, {not_cached}"

    def unreachable(*arguments: object, **options: object) -> None:
        raise ConnectionError("[Errno -2] Name or service not known")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "model_info", unreachable)
    assert train_line("openai") == (
        "error: model.pretrained = 'openai': the Hugging Face Hub cannot be reached "
        f"(ConnectionError: [Errno -2] Name or service not known), {not_cached}"
    )
    missing = base / "weights" / "ViT-B-16.pt"
    assert (
        train_line(str(missing)) == f"error: model.pretrained: no weights file {missing}; {instead}"
    )
    other = base / "other.bin"
    torch.save({"visual.proj": torch.zeros(2, 2)}, other)
    line = train_line(str(other))
    assert line.startswith(f"error: pretrained weights {other} do not fit model.clip_config")
    assert "Missing key(s) in state_dict" in line
    broken = base / "broken.safetensors"
    broken.write_bytes(b"not safetensors")
    assert train_line(str(broken)).startswith(
        f"error: pretrained weights {broken} cannot be read: "
    )
    line = train_line("openia")
    assert line.startswith(
        "error: model.pretrained 'openia' is neither a weights file nor a pretrained tag of "
        "ViT-B-16 (its tags: openai, laion400m_e31, "
    )
    assert line.endswith(instead)
    assert not (base / "never" / WEIGHTS_FILE).exists()


def test_error_lines_keep_square_brackets() -> None:
    """Rich markup would eat ``[data]``; the line is printed as written."""
    from vlreid.cli._app import error_message

    error = ReIDError("unknown key 'x' in [data]")
    assert error_message(error) == "unknown key 'x' in [data]"
    worker = DataFileError(  # as torch re-raises it in the main process
        "Caught DataFileError in DataLoader worker process 0.\nOriginal Traceback (most recent "
        "call last):\n  File ...\nvlreid.errors.DataFileError: cannot read image /a [b].jpg\n"
    )
    assert error_message(worker) == "cannot read image /a [b].jpg"
