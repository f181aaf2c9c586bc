"""Provenance of a run (provenance.json, its fields in model.safetensors, reid evaluate), the
weights_only-loadable state.pt with its random states, and ``reid evaluate --expect``."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import safe_open
from typer.testing import CliRunner

from tiny_runs import make_tiny_dataset, tiny_config
from vlreid.cli import app
from vlreid.datasets import load_manifest
from vlreid.errors import DataFileError
from vlreid.evaluation.feature_file import save_feature_file
from vlreid.model import WEIGHTS_FILE
from vlreid.training import provenance
from vlreid.training.checkpoint import (
    STATE_FILE,
    capture_rng_state,
    load_training_state,
    restore_rng_state,
)
from vlreid.training.loop import train

torch.set_num_threads(1)
runner = CliRunner()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny scgi run (captions, so that both data digests are set)."""
    base = tmp_path_factory.mktemp("provenance")
    data = make_tiny_dataset(base / "data")
    train(tiny_config(data, "scgi", epochs=1), base / "run")
    return base / "run"


def test_provenance_json_records_code_versions_hardware_and_data(run: Path) -> None:
    record = json.loads((run / "provenance.json").read_text())
    data, root = record["data"], run.parent / "data"
    assert record["versions"]["torch"] == torch.__version__.split("+")[0]
    assert set(record["versions"]) == {
        "python", "torch", "open_clip", "transformers", "accelerate", "vlreid"
    }  # fmt: skip
    assert record["hardware"] == {"device": "cpu", "world_size": 1, "precision": "no"}
    assert record["training"]["seed"] == 0 and record["training"]["effective_batch"] == 8
    assert record["code"]["source_sha256"] == provenance.source_sha256()

    # the manifest digest, recomputed naively: split, relpath, pid, camid, file size, in order
    manifest = load_manifest("synthetic", root).frame
    digest = hashlib.sha256()
    for row in manifest.itertuples():
        size = (root / row.relpath).stat().st_size
        digest.update(f"{row.split}\t{row.relpath}\t{row.pid}\t{row.camid}\t{size}\n".encode())
    assert data["manifest_sha256"] == digest.hexdigest() and data["manifest_rows"] == 40
    shard = pd.read_parquet(run.parent / "captions" / "part-00000.parquet")
    expected = hashlib.sha256(b"part-00000.parquet\0")
    for row in shard.itertuples():
        expected.update(json.dumps([row.relpath, row.caption]).encode() + b"\n")
    assert data["captions_sha256"] == expected.hexdigest() and data["caption_files"] == 1

    unhashed = {key: value for key, value in record.items() if key not in ("digest", "command")}
    unhashed["data"] = {k: v for k, v in data.items() if k not in ("root", "captions")}
    assert record["digest"] == provenance.canonical_digest(unhashed)


def test_the_git_state_is_the_checkouts_and_none_elsewhere(tmp_path: Path) -> None:
    commit, dirty = provenance.git_state()
    if commit is not None:  # running from a checkout
        head = subprocess.run(["git", "-C", str(provenance.PACKAGE_DIR), "rev-parse", "HEAD"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        assert commit == head.stdout.strip() and isinstance(dirty, bool)
    assert provenance.git_state(tmp_path) == (None, None)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)  # a repo without vlreid
    assert provenance.git_state(tmp_path) == (None, None)


def test_digests_change_with_the_source_and_the_data(tmp_path: Path) -> None:
    package = shutil.copytree(provenance.PACKAGE_DIR, tmp_path / "vlreid")
    before = provenance.source_sha256(package)
    assert before == provenance.source_sha256(provenance.PACKAGE_DIR)
    with open(package / "errors.py", "a") as handle:
        handle.write("\n# a change\n")
    assert provenance.source_sha256(package) != before

    shards = tmp_path / "captions"
    shards.mkdir()
    rows = pd.DataFrame({"relpath": ["a.jpg", "b.jpg"], "caption": ["A man.", "A woman."]})
    rows.to_parquet(shards / "part-00000.parquet")
    (shards / "_manifest.json").write_text("{}")  # not read by caption readers: not hashed
    first = provenance.captions_sha256(provenance.caption_files(shards))
    rows.attrs["root"] = "/elsewhere"  # other writer metadata, same captions: same digest
    rows.to_parquet(shards / "part-00000.parquet")
    assert provenance.captions_sha256(provenance.caption_files(shards)) == first
    rows.assign(caption=["A man.", "A child."]).to_parquet(shards / "part-00000.parquet")
    assert provenance.captions_sha256(provenance.caption_files(shards)) != first


def test_weights_metadata_and_evaluate_json_carry_the_provenance(run: Path) -> None:
    record = json.loads((run / "provenance.json").read_text())
    with safe_open(str(run / WEIGHTS_FILE), framework="pt") as handle:
        metadata = handle.metadata()
    assert json.loads(metadata["reid.provenance.digest"]) == record["digest"]
    assert (
        json.loads(metadata["reid.provenance.manifest_sha256"])
        == (record["data"]["manifest_sha256"])
    )
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(run / WEIGHTS_FILE),
                                 "--dataset", "synthetic", "--root", str(run.parent / "data"),
                                 "--format", "json", "--workers", "0"])  # fmt: skip
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["provenance"]["digest"] == record["digest"]
    assert printed["provenance"]["git_commit"] == record["code"]["git_commit"]
    assert printed["provenance"]["seed"] == 0 and printed["provenance"]["world_size"] == 1


def test_a_resume_with_other_code_keeps_the_earlier_record(tmp_path: Path) -> None:
    first = {"digest": "a", "code": {}}
    provenance.write_provenance(tmp_path, first)
    provenance.write_provenance(tmp_path, first)
    assert "earlier" not in json.loads((tmp_path / "provenance.json").read_text())
    provenance.write_provenance(tmp_path, {"digest": "b", "code": {}})
    written = json.loads((tmp_path / "provenance.json").read_text())
    assert written["digest"] == "b" and written["earlier"] == [first]


def test_state_pt_loads_with_weights_only(run: Path) -> None:
    state = torch.load(run / STATE_FILE, weights_only=True)
    assert state["epoch"] == 1 and "state" in state["optimizer"]
    numpy_state = state["rng"][0]["numpy"]
    assert isinstance(numpy_state["keys"], torch.Tensor) and numpy_state["keys"].shape == (624,)


def test_a_pickled_state_is_refused_in_one_line(tmp_path: Path) -> None:
    torch.save({"rng": np.random.get_state()}, tmp_path / STATE_FILE)  # an ndarray: not allowed
    with pytest.raises(DataFileError, match="does not load with weights_only=True") as caught:
        load_training_state(tmp_path / STATE_FILE)
    assert "\n" not in str(caught.value) and str(tmp_path / STATE_FILE) in str(caught.value)


def test_random_states_round_trip_through_a_weights_only_file(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.normal()  # leaves a cached Gaussian in NumPy's legacy state
    torch.save(capture_rng_state(), tmp_path / "rng.pt")
    expected = (random.random(), np.random.normal(), np.random.rand(3), torch.rand(3))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    again = (random.random(), np.random.normal(), np.random.rand(3), torch.rand(3))
    assert again[:2] == expected[:2]
    np.testing.assert_array_equal(again[2], expected[2])
    assert torch.equal(again[3], expected[3])


@pytest.fixture()
def perfect_features(tmp_path: Path) -> Path:
    """Features where every query's match ranks first: mAP = rank1 = mINP = 1."""
    centres = np.eye(4, dtype=np.float32)
    arrays = {
        "query_features": centres,
        "gallery_features": np.concatenate([centres, centres[::-1] * 0.5]),
        "query_pids": np.arange(4),
        "gallery_pids": np.concatenate([np.arange(4), np.arange(4)[::-1]]),
        "query_camids": np.zeros(4, np.int64),
        "gallery_camids": np.ones(8, np.int64),
    }
    save_feature_file(tmp_path / "features.npz", arrays)
    return tmp_path / "features.npz"


def test_expect_fails_with_exit_one_and_one_line_naming_the_figure_and_range(
    perfect_features: Path,
) -> None:
    arguments = ["evaluate", "--features", str(perfect_features), "--format", "json"]
    passing = runner.invoke(app, [*arguments, "--expect", "mAP=0.995:0.01",
                                  "--expect", "rank1=1:0", "--expect", "mINP=0.9:0.1"])  # fmt: skip
    assert passing.exit_code == 0, passing.output
    assert json.loads(passing.stdout)["mAP"] == 1.0
    assert "expect ok: mAP 1.0000 within [0.9850, 1.0050]" in passing.stderr

    failing = runner.invoke(app, [*arguments, "--expect", "mAP=0.552:0.01",
                                  "--expect", "rank1=1:0"])  # fmt: skip
    assert failing.exit_code == 1
    (line,) = failing.stderr.strip().splitlines()
    assert line == "expect failed: mAP 1.0000 outside [0.5420, 0.5620] (0.552 +- 0.01)"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mAP=0.5", "expected NAME=VALUE:TOLERANCE"),
        ("map=0.5:0.1", "unknown figure 'map'"),
        ("mAP=55.2:1", "VALUE must be a fraction in [0, 1]"),
        ("mAP=0.5:-1", "TOLERANCE >= 0"),
    ],
)
def test_bad_expectations_are_refused_before_evaluating(
    perfect_features: Path, spec: str, message: str
) -> None:
    result = runner.invoke(app, ["evaluate", "--features", str(perfect_features),
                                 "--expect", spec])  # fmt: skip
    assert result.exit_code == 2 and "error:" in result.output and message in result.output
