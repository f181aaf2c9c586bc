"""Speed of the procedural pedestrian renderer and of ``reid data synth``, on one core.

Prints, in one run: images/s of :class:`~vlreid.synthetic.renderer.PedestrianRenderer`
alone, with JPEG encoding, the baseline of JPEG-encoding an already rendered image (the cost
every dataset writer pays anyway), and the wall time of a 100-identity, 6-camera dataset.

    python benchmarks/synthetic_speed.py
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from vlreid.synthetic import make_synthetic_dataset
from vlreid.synthetic.camera import make_cameras
from vlreid.synthetic.person import sample_person
from vlreid.synthetic.renderer import PedestrianRenderer


def _jpeg(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=90, subsampling=0)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=64)
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    renderer = PedestrianRenderer(args.height, args.width)
    cameras = make_cameras(6, seed=0)
    rng = np.random.default_rng(0)
    people = [sample_person(rng) for _ in range(300)]
    for camera in cameras:
        renderer.scene(camera)  # painted once per camera; not part of the per-image cost

    started = time.perf_counter()
    images = [
        renderer.render(people[i % len(people)], cameras[i % len(cameras)], rng)
        for i in range(args.images)
    ]
    render_rate = args.images / (time.perf_counter() - started)

    started = time.perf_counter()
    for i in range(args.images):
        _jpeg(renderer.render(people[i % len(people)], cameras[i % len(cameras)], rng))
    render_jpeg_rate = args.images / (time.perf_counter() - started)

    started = time.perf_counter()
    for image in images:
        _jpeg(image)
    jpeg_rate = args.images / (time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as scratch:
        summary = make_synthetic_dataset(Path(scratch) / "synthetic", ids=100, cameras=6)
    total = summary.train_images + summary.query_images + summary.gallery_images

    print(f"image size {args.height}x{args.width}, {args.images} images, one thread")
    print(f"render only             {render_rate:8.0f} images/s")
    print(f"render + JPEG encode    {render_jpeg_rate:8.0f} images/s")
    print(f"JPEG encode (baseline)  {jpeg_rate:8.0f} images/s")
    print(f"reid data synth, 100 ids x 6 cameras: {total} images in {summary.seconds:.1f} s")


if __name__ == "__main__":
    main()
