"""Training-loader throughput next to bare JPEG decoding of the same files, in one run.

Usage::

    python benchmarks/data_loading.py [--ids 100 --images-per-id 12 --epochs 1 --workers 0 2]
        [--samples ../shared/data/market1501-samples]

Builds a Market-1501-layout dataset in a temporary folder (the synthetic renderer,
``vlreid.synthetic.make_synthetic_dataset``, when it is importable; otherwise random-noise
64x128 JPEGs, which decode slower than real crops because noise does not compress; or, with
``--samples DIR``, copies of the real crops in DIR), then prints
images/s for:

* bare decode: ``Image.open(path).convert("RGB")`` over the train images (the floor any loader
  pays without a cache);
* decode + resize: the deterministic part the memory cache removes;
* the training loader (256x128, P x K = 16 x 4, full augmentation), without and with
  ``cache="memory"``, with 0 and 2 workers; the cache's one-off build time is listed apart.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from vlreid.config import DataConfig
from vlreid.datasets.cache import read_image
from vlreid.datasets.load_check import run_train_epochs
from vlreid.datasets.manifest import ReIDRecord, build_manifest
from vlreid.datasets.transforms import Preprocessing, build_train_transform


def make_dataset(
    out: Path, ids: int, images_per_id: int, cameras: int, samples: Path | None = None
) -> str:
    """Write the benchmark images; return how they were made."""
    if samples is not None:
        crops = sorted(samples.glob("*.jpg"))
        (out / "bounding_box_train").mkdir(parents=True)
        for pid in range(1, ids + 1):
            for index in range(images_per_id):
                name = f"{pid:04d}_c{index % cameras + 1}s1_{index:06d}_00.jpg"
                crop = crops[(pid * images_per_id + index) % len(crops)]
                (out / "bounding_box_train" / name).write_bytes(crop.read_bytes())
        return f"copies of the {len(crops)} real crops in {samples}"
    try:
        from vlreid.synthetic import make_synthetic_dataset
    except ImportError:
        pass
    else:
        make_synthetic_dataset(out, ids=ids, cameras=cameras, seed=0)
        return "synthetic renderer"
    rng = np.random.default_rng(0)
    (out / "bounding_box_train").mkdir(parents=True)
    for pid in range(1, ids + 1):
        for index in range(images_per_id):
            pixels = rng.integers(0, 256, size=(128, 64, 3), dtype=np.uint8)
            name = f"{pid:04d}_c{index % cameras + 1}s1_{index:06d}_00.jpg"
            Image.fromarray(pixels).save(out / "bounding_box_train" / name, quality=90)
    return "random-noise JPEGs (64x128)"


def train_manifest(root: Path) -> pd.DataFrame:
    """The train rows, parsed from Market-style names (pid_cCAMs..._..jpg)."""
    records = []
    for path in sorted((root / "bounding_box_train").glob("*.jpg")):
        pid = int(path.name.split("_")[0])
        camid = int(path.name.split("_")[1][1]) - 1
        relpath = f"bounding_box_train/{path.name}"
        records.append(ReIDRecord(relpath, pid, camid, "train", "benchmark"))
    return build_manifest(records)


def time_per_image(paths: list[Path], work: object) -> float:
    start = time.perf_counter()
    for path in paths:
        work(path)  # type: ignore[operator]
    return len(paths) / (time.perf_counter() - start)


def time_loader(manifest: pd.DataFrame, root: Path, data: DataConfig, epochs: int) -> tuple:
    """Images/s of the training loader and its setup seconds, as ``reid data load`` measures."""
    result = run_train_epochs(manifest, root, data, Preprocessing.clip(), 0, epochs, progress=False)
    return result.images_per_second, result.setup_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=100, help="identities to generate")
    parser.add_argument(
        "--images-per-id", type=int, default=12, help="without the synthetic renderer only"
    )
    parser.add_argument("--cameras", type=int, default=6, help="cameras to generate")
    parser.add_argument("--epochs", type=int, default=1, help="loader epochs per measurement")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="worker counts")
    parser.add_argument(
        "--samples", type=Path, help="replicate these real JPEG crops instead of generating"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="P x K")
    parser.add_argument("--num-instances", type=int, default=4, help="K")
    arguments = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "dataset"
        source = make_dataset(
            root, arguments.ids, arguments.images_per_id, arguments.cameras, arguments.samples
        )
        manifest = train_manifest(root)
        paths = [root / relpath for relpath in manifest["relpath"]]
        time_per_image(paths[:50], read_image)  # warm the page cache
        transform = build_train_transform(Preprocessing.clip())
        rows = [
            ("bare decode (open + convert RGB)", time_per_image(paths, read_image), ""),
            (
                "decode + bicubic resize 256x128",
                time_per_image(paths, lambda p: transform.resize(read_image(p))),
                "",
            ),
        ]
        for cache in (None, "memory"):
            for workers in arguments.workers:
                data = DataConfig(
                    batch_size=arguments.batch_size,
                    num_instances=arguments.num_instances,
                    num_workers=workers,
                    cache=cache,
                )
                rate, setup = time_loader(manifest, root, data, arguments.epochs)
                note = f"cache built in {setup:.2f} s" if cache else ""
                rows.append((f"train loader, cache={cache}, workers={workers}", rate, note))

    print(f"{len(paths)} train images ({source}), torch threads 1, {time.strftime('%Y-%m-%d')}")
    print(f"{'measurement':<44} {'images/s':>10}  note")
    for name, rate, note in rows:
        print(f"{name:<44} {rate:>10.0f}  {note}")


if __name__ == "__main__":
    main()
