"""Tiny training runs for the loop, checkpoint and CLI tests: data, captions and configs.

The dataset is the procedural one (``vlreid.synthetic``) with 8 identities (4 train, 4
test) over 2 cameras, 64x32 pixels; the model is the tiny CLIP of ``vlreid.testing.clip`` at 32x16
input. A run of a few steps takes about a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from vlreid.config import RunConfig, config_from_dict
from vlreid.testing.clip import tiny_clip_config

IMAGE_SIZE = [32, 16]
TWO_STAGES = ("clip-reid", "svll")


def make_tiny_dataset(root: Path) -> Path:
    """Write the tiny synthetic dataset and an attribute-caption shard folder beside it.

    Returns:
        The dataset root; its captions are in ``root.parent / "captions"``.
    """
    from vlreid.datasets import load_manifest
    from vlreid.synthetic import make_synthetic_dataset

    make_synthetic_dataset(root, ids=8, cameras=2, seed=0, images_per_camera=2, height=64, width=32)
    manifest = load_manifest("synthetic", root).frame
    attributes = pd.read_parquet(root / "attributes.parquet").set_index("pid")
    captions = [
        f"A {row.age} {row.gender} with {row.hair} hair, wearing a {row.upper_color} "
        f"{row.upper_type} and {row.lower_color} {row.lower_type}."
        for row in attributes.loc[manifest["pid"]].itertuples()
    ]
    shards = root.parent / "captions"
    shards.mkdir(exist_ok=True)
    table = manifest.assign(caption=captions, status="ok")
    table.to_parquet(shards / "part-00000.parquet")
    return root


def tiny_raw_config(root: Path, method: str = "baseline", epochs: int = 2) -> dict[str, Any]:
    """A run config (as parsed TOML) for ``method`` on the tiny dataset."""
    stage = {
        "epochs": epochs,
        "warmup_epochs": 1,
        "schedule": "cosine",
        "steps_per_epoch": 2,
    }
    stages: dict[str, Any] = {"image": dict(stage)}
    method_table: dict[str, Any] = {"name": method, "lr": 1e-3}
    if method in TWO_STAGES:
        stages["prompt"] = {**stage, "sampler": "shuffle", "batch_size": 8}
        method_table["prompt_lr"] = 1e-2
    if method == "svll":
        method_table.update(head_hidden_dim=32, head_output_dim=16)
    if method == "scgi":
        method_table.update(new_module_lr=1e-3, heads=4)
    return {
        "data": {
            "dataset": "synthetic",
            "root": str(root),
            "captions": str(root.parent / "captions"),
            "batch_size": 8,
            "num_instances": 2,
            "num_workers": 0,
            "eval_batch_size": 16,
            "augmentation": {"padding": 2},
        },
        "model": {
            "image_size": IMAGE_SIZE,
            "clip_config": tiny_clip_config(image_size=tuple(IMAGE_SIZE)),
        },
        "method": method_table,
        "stages": stages,
        "train": {"seed": 0, "eval_every": 1, "cpu": True, "progress": False},
    }


def tiny_config(
    root: Path, method: str = "baseline", epochs: int = 2, overrides: tuple[str, ...] = ()
) -> RunConfig:
    """:func:`tiny_raw_config`, typed."""
    return config_from_dict(tiny_raw_config(root, method, epochs), overrides)


def write_tiny_config(path: Path, root: Path, method: str = "baseline", epochs: int = 2) -> Path:
    """Write the tiny config as a TOML file (for the CLI and subprocess tests)."""
    from vlreid.config import dump_config

    path.write_text(dump_config(tiny_config(root, method, epochs)))
    return path
