"""Pretrain the tiny CLIP shipped as ``builtin:tiny-clip-synthetic`` (CPU, one thread, seeded).

The model is a real open_clip ``CLIP``: a ViT image tower built at the ReID crop size of the
synthetic configs (64x32, patch 8: an 8x4 grid, so the weights reach the ReID model with its
positional embedding unchanged: no resize, no round trip), and a text transformer with the real
CLIP BPE vocabulary (open_clip's bundled file) and a 40-token context (the longest sentence the
recipe writes has 39 tokens with its start and end tokens).

Data: ``--ids`` fresh identities x ``--views`` images, rendered with the public renderer, each
identity seen by random cameras of its own network (``--camera-sets`` networks of 9 cameras with
seeds from 2,000,000 on, far from the seeds ``reid data synth`` uses and from those of the tiny
LLaVA's training), people drawn from their own random stream: never the demo's images. Each image
is paired at every step with a freshly drawn sentence about its attributes
(:func:`vlreid.testing.clip_pretraining.describe`), and the loss is CLIP's symmetric contrastive
loss with every consistent image-sentence pair a positive
(:func:`vlreid.testing.clip_pretraining.multi_positive_clip_loss`).

Every ``--eval-every`` steps the zero-shot ReID mAP is measured on ``reid data synth --ids 60
--cameras 4 --seed 101`` (the validation curve); at the end on ``--seed 7`` (the reported figure,
never used to choose a setting), for the pretrained tower and for the same architecture randomly
initialised. ``--out`` receives ``model.safetensors`` (float16, every weight of the CLIP),
``open_clip_config.json`` and ``training.json`` (command, arguments, times, figures, curve).

Reproduce the shipped model (from the repository root; the defaults are its settings)::

    python scripts/train_tiny_clip.py --out src/vlreid/assets/tiny-clip-synthetic --seed 0

Check it::

    reid data synth --out /tmp/synth7 --ids 60 --cameras 4 --seed 7
    reid evaluate --clip builtin:tiny-clip-synthetic --dataset synthetic --root /tmp/synth7
    reid evaluate --clip builtin:tiny-clip-synthetic --untrained --dataset synthetic \\
        --root /tmp/synth7
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import open_clip
import torch
from safetensors.torch import save_file

from vlreid.datasets.transforms import Preprocessing
from vlreid.evaluation.features import checkpoint_features
from vlreid.evaluation.metrics import evaluate_features
from vlreid.evaluation.zero_shot import clip_reid_model
from vlreid.model import BackboneConfig
from vlreid.synthetic import make_synthetic_dataset
from vlreid.templates import load_template
from vlreid.testing.clip import VOCAB_SIZE
from vlreid.testing.clip_pretraining import Schedule, pretrain, render_pairs

logger = logging.getLogger("train_tiny_clip")

REPOSITORY = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPOSITORY / "src" / "vlreid" / "assets" / "tiny-clip-synthetic"
TRAIN_CAMERA_SEED = 2_000_000
VALIDATION_SEED = 101
REPORT_SEED = 7


def model_config(args: argparse.Namespace) -> dict[str, Any]:
    """The open_clip model config of the tiny CLIP."""
    return {
        "embed_dim": args.embed_dim,
        "quick_gelu": True,
        "vision_cfg": {
            "image_size": [args.height, args.width],
            "layers": args.vision_layers,
            "width": args.vision_width,
            "head_width": 32,
            "patch_size": args.patch_size,
        },
        "text_cfg": {
            "context_length": args.context_length,
            "vocab_size": VOCAB_SIZE,
            "width": args.text_width,
            "heads": args.text_width // 32,
            "layers": args.text_layers,
        },
    }


def zero_shot(model: open_clip.CLIP, config: dict[str, Any], root: Path) -> dict[str, float]:
    """Zero-shot mAP and rank-1 of the image tower on the synthetic dataset at ``root``."""
    size = tuple(config["vision_cfg"]["image_size"])
    backbone = BackboneConfig(clip_config=config, image_size=size)
    arrays = checkpoint_features(clip_reid_model(model, backbone), "synthetic", root, 256, 0)
    result = evaluate_features(
        *(arrays["query_features"], arrays["gallery_features"]),
        *(arrays["query_pids"], arrays["gallery_pids"]),
        *(arrays["query_camids"], arrays["gallery_camids"]),
    )
    return {"mAP": round(result.mAP, 4), "rank1": round(result.rank(1), 4)}


def train(args: argparse.Namespace) -> dict[str, Any]:
    """Render, pretrain, save and measure; returns what goes to training.json."""
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    config = model_config(args)
    model = open_clip.CLIP(**config)
    parameters = sum(parameter.numel() for parameter in model.parameters())
    size = (args.height, args.width)
    pairs = render_pairs(args.ids, args.views, args.camera_sets, TRAIN_CAMERA_SEED, args.seed, size)
    scratch = Path(tempfile.mkdtemp(prefix="tiny-clip-"))
    roots = {}
    for seed in (VALIDATION_SEED, REPORT_SEED):
        roots[seed] = scratch / f"synth{seed}"
        make_synthetic_dataset(roots[seed], ids=60, cameras=4, seed=seed)
    render_seconds = round(time.perf_counter() - started, 1)
    logger.info(
        "model %d parameters; %d images, %.0f s", parameters, len(pairs.images), render_seconds
    )

    schedule = Schedule(
        steps=args.steps,
        lr=args.lr,
        batch_size=args.batch_size,
        warmup=args.warmup,
        weight_decay=args.weight_decay,
        seed=args.seed,
        log_every=args.log_every,
    )
    clock = time.perf_counter()
    curve = pretrain(
        model,
        pairs,
        schedule,
        load_template("person"),
        Preprocessing.clip(size),
        lambda: zero_shot(model, config, roots[VALIDATION_SEED]),
        args.eval_every,
    )
    train_seconds = round(time.perf_counter() - clock, 1)

    args.out.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().half().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(args.out / "model.safetensors"), metadata={"format": "open_clip"})
    (args.out / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
    reloaded = open_clip.CLIP(**config)
    open_clip.load_checkpoint(reloaded, str(args.out / "model.safetensors"))
    torch.manual_seed(args.seed)
    untrained = open_clip.CLIP(**config)
    report = {
        "pretrained": zero_shot(reloaded.eval(), config, roots[REPORT_SEED]),
        "random_init": zero_shot(untrained.eval(), config, roots[REPORT_SEED]),
    }
    figures = {
        "command": " ".join(["python", *sys.argv]),
        "arguments": {key: str(value) for key, value in vars(args).items()},
        "parameters": parameters,
        "images": len(pairs.images),
        "seconds": {"render": render_seconds, "train": train_seconds},
        "threads": torch.get_num_threads(),
        f"zero_shot_synth_ids60_cameras4_seed{REPORT_SEED}": report,
        f"curve_zero_shot_seed{VALIDATION_SEED}": curve,
    }
    (args.out / "training.json").write_text(json.dumps(figures, indent=2) + "\n")
    logger.info("zero-shot on seed %d: %s; saved to %s", REPORT_SEED, json.dumps(report), args.out)
    return figures


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (the defaults reproduce the shipped model)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--out", type=Path, default=DEFAULT_OUT, help="folder to write the model into")
    add("--seed", type=int, default=0, help="seed of the data, the weights and the batch order")
    add("--ids", type=int, default=3000, help="training identities")
    add("--views", type=int, default=10, help="images per training identity")
    add("--camera-sets", type=int, default=300, help="camera networks of the training identities")
    add("--steps", type=int, default=2000, help="optimizer steps")
    add("--batch-size", type=int, default=128, help="image-sentence pairs per step")
    add("--lr", type=float, default=1e-3, help="peak learning rate (AdamW)")
    add("--warmup", type=int, default=100, help="warm-up steps")
    add("--weight-decay", type=float, default=0.1, help="AdamW weight decay (matrices only)")
    add("--height", type=int, default=64, help="image height (the ReID crop's)")
    add("--width", type=int, default=32, help="image width (the ReID crop's)")
    add("--patch-size", type=int, default=8, help="ViT patch size")
    add("--vision-width", type=int, default=96, help="ViT width")
    add("--vision-layers", type=int, default=4, help="ViT blocks")
    add("--text-width", type=int, default=64, help="text transformer width")
    add("--text-layers", type=int, default=4, help="text transformer blocks")
    add("--context-length", type=int, default=40, help="text tokens (start and end included)")
    add("--embed-dim", type=int, default=64, help="joint embedding size")
    add("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)")
    add("--log-every", type=int, default=50, help="log the loss every N steps")
    add("--eval-every", type=int, default=250, help="validation zero-shot mAP every N steps")
    return parser.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    arguments = parse_arguments()
    torch.set_num_threads(arguments.threads)
    train(arguments)
