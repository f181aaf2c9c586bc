"""Is the synthetic dataset a real ReID task? Baselines that must fail, and a model that must learn.

Writes a synthetic dataset (or reads ``--root``), then scores on its query/gallery split, with the
Market-1501 protocol (gallery images of the query's pid in the query's camera are ignored):

* raw pixels (the 128x64 image as a vector) and RGB colour histograms: these must score low,
  because cameras differ in scene, light, scale, viewpoint and occlusion;
* with ``--train-steps N``: a small open_clip ViT image encoder (about 1.9M parameters, random
  initialisation) before training and after N steps of ID (label smoothing 0.1) + batch-hard
  triplet (margin 0.3) on the train split, P x K = 16 x 4, flip + pad/crop: it must go from
  chance to a high mAP in a few CPU minutes, because identities carry consistent traits.

    python benchmarks/synthetic_quality.py --ids 100 --cameras 6 --train-steps 600
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from vlreid.synthetic import SPLIT_FOLDERS, make_synthetic_dataset

NAME = re.compile(r"^(\d{4})_c(\d)s\d_\d{6}_\d{2}\.jpg$")


def load_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images ``(N, H, W, 3)`` uint8, pids ``(N,)`` and 0-based camids ``(N,)`` of a split."""
    images, pids, camids = [], [], []
    for path in sorted((root / SPLIT_FOLDERS[split]).glob("*.jpg")):
        match = NAME.match(path.name)
        if match is None:
            raise ValueError(f"unexpected file name {path}")
        images.append(np.asarray(Image.open(path).convert("RGB")))
        pids.append(int(match.group(1)))
        camids.append(int(match.group(2)) - 1)
    return np.stack(images), np.asarray(pids), np.asarray(camids)


def evaluate(query: np.ndarray, gallery: np.ndarray, q_pids, q_cams, g_pids, g_cams) -> dict:
    """Rank-1 and mAP with cosine distance, Market protocol (same pid and camera ignored)."""
    query = query / np.linalg.norm(query, axis=1, keepdims=True).clip(1e-12)
    gallery = gallery / np.linalg.norm(gallery, axis=1, keepdims=True).clip(1e-12)
    distances = -query @ gallery.T
    hits, average_precisions = [], []
    for index in range(len(query)):
        keep = ~((g_pids == q_pids[index]) & (g_cams == q_cams[index]))
        order = np.argsort(distances[index][keep], kind="stable")
        matches = (g_pids[keep][order] == q_pids[index]).astype(np.float64)
        if matches.sum() == 0:
            continue
        hits.append(matches[0])
        ranks = np.flatnonzero(matches) + 1
        average_precisions.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
    return {"rank1": float(np.mean(hits)), "mAP": float(np.mean(average_precisions))}


def colour_histograms(images: np.ndarray, bins: int = 8) -> np.ndarray:
    """Joint RGB histograms, ``(N, bins**3)``, normalised to sum 1."""
    quantised = (images.astype(np.int64) * bins) // 256
    codes = (quantised[..., 0] * bins + quantised[..., 1]) * bins + quantised[..., 2]
    histograms = np.stack([np.bincount(c.ravel(), minlength=bins**3) for c in codes])
    return histograms / histograms.sum(axis=1, keepdims=True)


def build_encoder(height: int, width: int) -> torch.nn.Module:
    """A small randomly initialised open_clip ViT image tower for ``(B, 3, height, width)``."""
    import open_clip

    torch.manual_seed(0)
    clip = open_clip.CLIP(
        embed_dim=128,
        vision_cfg={
            "image_size": [height, width],
            "layers": 4,
            "width": 192,
            "head_width": 48,
            "patch_size": 8,
        },
        text_cfg={"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
        quick_gelu=True,
    )
    return clip.visual


def to_tensor(images: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    tensor = F.interpolate(tensor, size=size, mode="bilinear", antialias=True, align_corners=False)
    return (tensor - 0.5) / 0.25


@torch.no_grad()
def encode(encoder: torch.nn.Module, images: torch.Tensor) -> np.ndarray:
    encoder.eval()
    return torch.cat([encoder(batch) for batch in images.split(256)]).numpy()


def train(encoder, images: torch.Tensor, labels: np.ndarray, steps: int, seed: int) -> None:
    """ID + batch-hard triplet with a P x K sampler (P 16, K 4), AdamW, cosine schedule."""
    generator = np.random.default_rng(seed)
    classes = int(labels.max()) + 1
    classifier = torch.nn.Linear(encoder.output_dim, classes, bias=False)
    neck = torch.nn.BatchNorm1d(encoder.output_dim)
    parameters = [*encoder.parameters(), *classifier.parameters(), *neck.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=1e-3, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, 1e-3, total_steps=steps, pct_start=0.1
    )
    by_label = [np.flatnonzero(labels == label) for label in range(classes)]
    encoder.train()
    for step in range(steps):
        chosen = generator.choice(classes, 16, replace=False)
        index = np.concatenate(
            [generator.choice(by_label[c], 4, replace=len(by_label[c]) < 4) for c in chosen]
        )
        batch = images[index]
        flip = torch.from_numpy(generator.random(len(batch)) < 0.5)
        batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
        padded = F.pad(batch, (4, 4, 4, 4))
        top, left = generator.integers(0, 9, size=2)
        batch = padded[:, :, top : top + batch.shape[2], left : left + batch.shape[3]]
        target = torch.from_numpy(labels[index])
        features = encoder(batch)
        id_loss = F.cross_entropy(classifier(neck(features)), target, label_smoothing=0.1)
        distances = torch.cdist(features, features)
        same = target[:, None] == target[None, :]
        hardest_positive = (distances * same).max(1).values
        hardest_negative = (distances + same * 1e6).min(1).values
        triplet = F.relu(hardest_positive - hardest_negative + 0.3).mean()
        loss = id_loss + triplet
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0 or step == steps - 1:
            print(f"  step {step:4d}  id {id_loss.item():.3f}  triplet {triplet.item():.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, help="existing synthetic dataset (else one is made)")
    parser.add_argument("--ids", type=int, default=100)
    parser.add_argument("--cameras", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-steps", type=int, default=0, help="0 skips the model check")
    parser.add_argument("--input", default="128x64", help="model input HxW")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        root = args.root
        if root is None:
            root = Path(scratch) / "synthetic"
            summary = make_synthetic_dataset(
                root, ids=args.ids, cameras=args.cameras, seed=args.seed
            )
            print(
                f"generated {summary.train_images + summary.query_images + summary.gallery_images}"
                f" images in {summary.seconds:.1f} s"
            )
        train_images, train_pids, _ = load_split(root, "train")
        query, q_pids, q_cams = load_split(root, "query")
        gallery, g_pids, g_cams = load_split(root, "gallery")
    print(f"train {len(train_images)}, query {len(query)}, gallery {len(gallery)} images")
    labels = np.unique(train_pids, return_inverse=True)[1]
    ids = (q_pids, q_cams, g_pids, g_cams)
    flat = [images.reshape(len(images), -1).astype(np.float32) for images in (query, gallery)]
    print("raw pixels       ", evaluate(flat[0] - flat[0].mean(), flat[1] - flat[0].mean(), *ids))
    print("colour histogram ", evaluate(colour_histograms(query), colour_histograms(gallery), *ids))
    if args.train_steps <= 0:
        return
    size = tuple(int(value) for value in args.input.split("x"))
    encoder = build_encoder(*size)
    count = sum(parameter.numel() for parameter in encoder.parameters())
    tensors = [to_tensor(images, size) for images in (train_images, query, gallery)]
    print(f"ViT encoder {count / 1e6:.2f}M parameters, input {size}")
    print(
        "untrained ViT    ",
        evaluate(encode(encoder, tensors[1]), encode(encoder, tensors[2]), *ids),
    )
    started = time.perf_counter()
    train(encoder, tensors[0], labels, args.train_steps, args.seed)
    seconds = time.perf_counter() - started
    print(
        f"trained ViT ({args.train_steps} steps, {seconds:.0f} s)",
        evaluate(encode(encoder, tensors[1]), encode(encoder, tensors[2]), *ids),
    )


if __name__ == "__main__":
    main()
