"""Training and inference speed of the four methods, relative to ``baseline``, in one process.

Training: each method's optimizer step (forward, backward, Adam) on the same prebuilt P x K batches
of the procedural dataset, with the tiny CLIP of ``configs/synthetic_*.toml`` (data loading
excluded: it is the same for every method). Two-stage methods are timed in both stages. Rounds
alternate the methods so that a change of machine load hits all of them alike; the best round
counts.

Inference: ``vlreid.load_model`` of a saved ``scgi`` model against a saved ``baseline`` model: the
same ``ReIDModel`` (image encoder + neck), so the ratio should be 1 up to noise.

    python benchmarks/training.py [--steps 10 --rounds 3 --threads 1]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch

from vlreid.config import load_config
from vlreid.model import load_model, save_inference_weights
from vlreid.training.data import (
    build_feature_loader,
    build_stage_loader,
    load_run_data,
    set_loader_epoch,
)
from vlreid.training.schedule import build_optimizer
from vlreid.training.setup import build_run_method

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
METHODS = ("baseline", "clip-reid", "svll", "scgi")


def make_data(folder: Path, ids: int = 60) -> tuple[Path, Path]:
    """The synthetic dataset (``ids / 2`` train identities) and its attribute captions."""
    from typer.testing import CliRunner

    from vlreid.cli import app
    from vlreid.synthetic import make_synthetic_dataset

    data, captions = folder / "data", folder / "captions"
    make_synthetic_dataset(data, ids=ids, cameras=4, seed=0)
    attributes = str(data / "attributes.parquet")
    arguments = ["caption", "--dataset", "synthetic", "--root", str(data), "--out",
                 str(captions), "--captioner", "attributes",
                 "--attributes", attributes]  # fmt: skip
    result = CliRunner().invoke(app, arguments)
    if result.exit_code:
        raise SystemExit(result.output)
    return data, captions


class Trainer:
    """One method, its stages' optimizers and prebuilt batches."""

    def __init__(self, method_name: str, data: Path, captions: Path, steps: int) -> None:
        overrides = [f"data.root={data}", f"data.captions={captions}", "train.progress=false"]
        config = load_config(CONFIGS / f"synthetic_{method_name}.toml", overrides)
        torch.manual_seed(0)
        run_data = load_run_data(config.data)
        self.method = build_run_method(config, run_data)
        self.stages = {}
        self.feature_loader = build_feature_loader(config, run_data)
        for stage in self.method.stages:
            stage_config = config.stages[stage.name]
            loader = build_stage_loader(config, stage.name, run_data)
            set_loader_epoch(loader, 1)
            batches = [batch for _, batch in zip(range(steps), loader, strict=False)]
            stage.prepare(self.feature_loader)
            optimizer = build_optimizer(stage_config, stage.param_groups())
            self.stages[stage.name] = (stage, optimizer, batches)
        self.config = config

    def images_per_second(self, stage_name: str) -> float:
        stage, optimizer, batches = self.stages[stage_name]
        stage.prepare(self.feature_loader)  # trainable split of the stage
        self.method.train()
        started = time.perf_counter()
        for batch in batches:
            output = stage(batch)
            output.loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return sum(len(batch["labels"]) for batch in batches) / (time.perf_counter() - started)


def inference_images_per_second(
    model: torch.nn.Module, images: torch.Tensor, repeats: int
) -> float:
    model(images[:8])  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        model(images)
    return repeats * len(images) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per method and round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (best counts)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    # Configure logging before CliRunner does (it would bind the root logger to its own stream).
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as folder:
        data, captions = make_data(Path(folder))
        trainers = {name: Trainer(name, data, captions, arguments.steps) for name in METHODS}
        best: dict[tuple[str, str], float] = {}
        for _ in range(arguments.rounds):
            for name, trainer in trainers.items():
                for stage in trainer.stages:
                    speed = trainer.images_per_second(stage)
                    best[name, stage] = max(best.get((name, stage), 0.0), speed)
        baseline = best["baseline", "image"]
        print(f"training, tiny CLIP, 64x32, batch 64, {arguments.threads} thread(s), "
              f"best of {arguments.rounds} rounds of {arguments.steps} steps")  # fmt: skip
        print(f"{'method':<10} {'stage':<7} {'images/s':>9} {'vs baseline':>12}")
        for (name, stage), speed in best.items():
            print(f"{name:<10} {stage:<7} {speed:9.1f} {speed / baseline:11.2f}x")

        paths = {}
        for name in ("baseline", "scgi"):
            trainer = trainers[name]
            paths[name] = Path(folder) / f"{name}.safetensors"
            preprocessing = trainer.config.model.preprocessing()
            save_inference_weights(paths[name], trainer.method.model, preprocessing)
        images = torch.randn(256, 3, 64, 32)
        speeds = {name: 0.0 for name in paths}
        models = {name: load_model(path) for name, path in paths.items()}
        for _ in range(arguments.rounds):
            for name, model in models.items():
                speeds[name] = max(speeds[name], inference_images_per_second(model, images, 4))
        print("inference (vlreid.load_model, batch 256):")
        for name, speed in speeds.items():
            print(f"{name:<10} {speed:9.1f} images/s {speed / speeds['baseline']:6.2f}x")


if __name__ == "__main__":
    main()
