"""Can every attribute be read from a rendered pedestrian? Per-field accuracy on unseen identities.

A proxy for the captioner that will be trained on these renders: a small CNN with one
classification head per :data:`vlreid.attributes.PERSON_FIELDS` field is trained on images of some
identities (random camera, viewpoint, occlusion, as in the dataset) and scored on identities it
never saw, at the chosen input size (default 64x32, i.e. the dataset's 128x64 halved). A field
whose accuracy stays far below the others has a cue that the renderer draws too weakly. The
majority-class rate of each field is printed beside it as the floor.

    python benchmarks/synthetic_legibility.py --train-ids 2000 --steps 1500
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vlreid.attributes import PERSON_FIELDS
from vlreid.synthetic.camera import VIEWS, make_cameras
from vlreid.synthetic.person import sample_person
from vlreid.synthetic.renderer import PedestrianRenderer

FIELDS = list(PERSON_FIELDS)


def render_set(ids: int, per_id: int, seed: int, size: tuple[int, int]):
    """Images ``(N, 3, H, W)``, labels ``(N, fields)``, views and occlusion flags of new people."""
    renderer = PedestrianRenderer()
    cameras = make_cameras(6, seed=0)
    rng = np.random.default_rng(seed)
    images, labels, views, occluded = [], [], [], []
    for _ in range(ids):
        person = sample_person(rng)
        for _ in range(per_id):
            camera = cameras[int(rng.integers(len(cameras)))]
            view = VIEWS[int(rng.integers(len(VIEWS)))]
            occlude = bool(rng.random() < camera.occlusion_probability)
            images.append(renderer.render(person, camera, rng, view=view, occlude=occlude))
            occluded.append(occlude)
            labels.append([PERSON_FIELDS[f].index(getattr(person, f)) for f in FIELDS])
            views.append(view)
    tensor = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    tensor = F.interpolate(tensor, size=size, mode="bilinear", antialias=True, align_corners=False)
    return (tensor - 0.5) / 0.25, torch.tensor(labels), np.asarray(views), np.asarray(occluded)


class AttributeNet(nn.Module):
    """Four conv blocks, global average pooling, one linear head per field."""

    def __init__(self) -> None:
        super().__init__()
        layers, channels = [], 3
        for width in (16, 32, 64, 96):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
            layers.append(nn.MaxPool2d(2))
            channels = width
        self.features = nn.Sequential(*layers)
        self.heads = nn.ModuleList(nn.Linear(channels, len(PERSON_FIELDS[f])) for f in FIELDS)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        pooled = self.features(images).mean(dim=(2, 3))
        return [head(pooled) for head in self.heads]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-ids", type=int, default=2000)
    parser.add_argument("--test-ids", type=int, default=300)
    parser.add_argument("--per-id", type=int, default=4, help="images per identity")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--input", default="64x32", help="classifier input HxW")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    size = tuple(int(value) for value in args.input.split("x"))
    started = time.perf_counter()
    train_images, train_labels, _, _ = render_set(args.train_ids, args.per_id, 1, size)
    test_images, test_labels, test_views, test_occluded = render_set(args.test_ids, 2, 2, size)
    print(
        f"rendered {len(train_images) + len(test_images)} images in "
        f"{time.perf_counter() - started:.1f} s; input {size}"
    )
    model = AttributeNet()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=args.steps)
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    model.train()
    for step in range(args.steps):
        index = torch.randint(len(train_images), (64,), generator=generator)
        batch = train_images[index]
        flip = torch.rand(len(batch), generator=generator) < 0.5
        batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
        logits = model(batch)
        loss = sum(F.cross_entropy(out, train_labels[index, i]) for i, out in enumerate(logits))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 250 == 0:
            print(f"  step {step:5d} loss {loss.item():.3f}")
    model.eval()
    with torch.no_grad():
        outputs = [model(batch) for batch in test_images.split(256)]
        predictions = [torch.cat([output[i] for output in outputs]) for i in range(len(FIELDS))]
    print(
        f"trained {args.steps} steps in {time.perf_counter() - started:.0f} s; "
        f"held-out identities: {args.test_ids}"
    )
    accuracies = []
    for index, field in enumerate(FIELDS):
        correct = (predictions[index].argmax(1) == test_labels[:, index]).numpy()
        majority = np.bincount(test_labels[:, index].numpy()).max() / len(test_labels)
        by_view = "  ".join(f"{v} {correct[test_views == v].mean():.2f}" for v in VIEWS)
        clear = correct[~test_occluded].mean()
        print(
            f"{field:12s} {correct.mean():.3f} (majority {majority:.2f}, unoccluded {clear:.3f})"
            f"  {by_view}"
        )
        accuracies.append((correct.mean(), clear))
    overall, unoccluded = np.mean(accuracies, axis=0)
    print(
        f"mean field accuracy {overall:.3f} (unoccluded images {unoccluded:.3f}, "
        f"{(~test_occluded).sum()} of {len(test_occluded)})"
    )


if __name__ == "__main__":
    main()
