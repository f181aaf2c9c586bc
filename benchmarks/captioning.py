"""Captioning throughput on a tiny LLaVA: batch 1 vs batch 16, and the pipeline's overhead.

The model is an untrained tiny LLaVA built on the spot (its answers run to ``--max-new-tokens``),
or ``--model`` (``builtin:tiny-llava-synthetic``, whose answers stop at the end of the caption,
a folder or a hub id).

For each batch size, in the same run and on the same images and model:

- ``generate``: bare ``generate_answers`` calls on images already decoded and padded to square
  (the model's work only);
- ``pipeline``: ``caption_manifest`` into a fresh shard folder (JPEG decoding one batch ahead,
  padding, processor, generate, decoding, answer parsing, 77-token fitting, Parquet shards).

Each figure is the best of ``--repeats`` timings (the machine is shared). The overhead is
``pipeline seconds / generate seconds - 1``; a last line times the pipeline with a captioner that
answers instantly (the ceiling the pipeline alone allows). Run::

    python benchmarks/captioning.py [--images 128] [--max-new-tokens 32] [--threads 1]
    python benchmarks/captioning.py --model builtin:tiny-llava-synthetic --max-new-tokens 48
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from vlreid.captioning.llava import LlavaCaptioner, LlavaSettings, generate_answers, pad_to_square
from vlreid.captioning.protocol import CaptionItem
from vlreid.captioning.run import CaptionRunConfig, caption_manifest
from vlreid.datasets import load_manifest
from vlreid.synthetic import make_synthetic_dataset
from vlreid.templates import load_template
from vlreid.testing.llava import build_tiny_llava


def bare_generate_seconds(
    captioner: LlavaCaptioner, images: list[Image.Image], batch: int
) -> float:
    """Seconds of ``generate_answers`` alone over ``images`` in batches of ``batch``."""
    padded = [pad_to_square(image, captioner.fill) for image in images]
    started = time.perf_counter()
    for start in range(0, len(padded), batch):
        chunk = padded[start : start + batch]
        generate_answers(
            captioner.network,
            captioner.processor,
            chunk,
            [captioner.prompt] * len(chunk),
            captioner.config.max_new_tokens,
        )
    return time.perf_counter() - started


class EchoCaptioner:
    """Answers instantly (the tiny model's last answers, cycled): the pipeline without a model."""

    name = "echo"
    model = "echo"
    needs_images = True

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers

    def settings(self) -> dict[str, object]:
        return {}

    def describe(self, items: list) -> list[str]:
        return [self.answers[index % len(self.answers)] for index in range(len(items))]


def main() -> None:
    """Build the data and the model, then time both paths at each batch size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=128, help="Train images to caption.")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="Answer length.")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads.")
    parser.add_argument("--repeats", type=int, default=3, help="Best of N timings per path.")
    parser.add_argument(
        "--model", default=None, help="LLaVA to time (default: an untrained tiny one, built here)."
    )
    arguments = parser.parse_args()
    torch.set_num_threads(arguments.threads)
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = Path(scratch)
        # Half the ids are train ids; each is seen by all 4 cameras, 2 images per camera.
        ids = max(4, 2 * ((arguments.images + 7) // 8))
        make_synthetic_dataset(
            scratch_path / "synthetic", ids=ids, cameras=4, min_cameras=4,
            images_per_camera=2, height=128, width=64,
        )  # fmt: skip
        manifest = load_manifest("synthetic", scratch_path / "synthetic")
        root = manifest.root
        train = manifest.split_rows("train").sort_values("relpath")
        train = train.head(arguments.images)
        images = [Image.open(root / relpath).convert("RGB") for relpath in train["relpath"]]
        model = arguments.model or str(build_tiny_llava(scratch_path / "tiny-llava"))
        settings = LlavaSettings(model=model, max_new_tokens=arguments.max_new_tokens)
        captioner = LlavaCaptioner(settings, load_template("person").instruction)
        bare_generate_seconds(captioner, images[:16], 16)  # warm-up

        print(
            f"{arguments.model or 'untrained tiny LLaVA'}, {len(images)} images of 64x128, "
            f"max_new_tokens "
            f"{arguments.max_new_tokens}, {arguments.threads} thread(s)"
        )
        print(f"{'batch':>5} | {'generate img/s':>14} | {'pipeline img/s':>14} | overhead")
        rates: dict[int, float] = {}
        for batch in arguments.batch_sizes:
            config = CaptionRunConfig(batch_size=batch, shard_size=64, progress=False)
            bare_times, pipeline_times = [], []
            for repeat in range(arguments.repeats):  # interleaved, so that load drifts hit both
                bare_times.append(bare_generate_seconds(captioner, images, batch))
                out = scratch_path / f"out-{batch}-{repeat}"
                pipeline_times.append(caption_manifest(train, root, out, config, captioner).seconds)
            bare, pipeline = min(bare_times), min(pipeline_times)
            rates[batch] = len(images) / pipeline
            print(
                f"{batch:>5} | {len(images) / bare:>14.1f} | {rates[batch]:>14.1f} | "
                f"{100 * (pipeline / bare - 1):+.1f}%"
            )
        answers = captioner.describe([CaptionItem(str(i), 0, image) for i, image in
                                      enumerate(images[:16])])  # fmt: skip
        echo = EchoCaptioner([f"{answer} {index}" for index, answer in enumerate(answers * 8)])
        config = CaptionRunConfig(batch_size=16, shard_size=64, progress=False)
        alone = min(
            caption_manifest(train, root, scratch_path / f"echo-{repeat}", config, echo).seconds
            for repeat in range(arguments.repeats)
        )
        print(
            f"pipeline alone (instant answers, all distinct): {1000 * alone / len(images):.2f} "
            f"ms/image = {len(images) / alone:.0f} images/s ceiling"
        )
        if len(rates) > 1:
            first, last = arguments.batch_sizes[0], arguments.batch_sizes[-1]
            ratio = rates[last] / rates[first]
            print(f"pipeline throughput, batch {last} / batch {first}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
