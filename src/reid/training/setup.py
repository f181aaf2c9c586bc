"""The pieces of a run that the loop builds before training: precision, backbone, method.

Also the check that a ``state.pt`` found in the run folder belongs to the same run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from reid.config import RunConfig
from reid.errors import ReIDError
from reid.training.backbone import BackboneConfig, build_clip
from reid.training.checkpoint import STATE_FILE
from reid.training.data import RunData

RESUME_KEYS: tuple[str, ...] = ("model", "method", "stages")


def resolve_mixed_precision(mixed_precision: str, cpu: bool) -> str:
    """``auto`` -> ``bf16`` on a GPU that supports it, else ``no``; other values unchanged."""
    if mixed_precision != "auto":
        return mixed_precision
    on_gpu = torch.cuda.is_available() and not cpu
    return "bf16" if on_gpu and torch.cuda.is_bf16_supported() else "no"


def check_resumable(
    state: dict[str, Any], config: RunConfig, world_size: int, run_dir: Path
) -> None:
    """Refuse to resume a run with another model, method, stages, or number of processes."""
    saved, current = state["config"], config.to_dict()
    changed = [key for key in RESUME_KEYS if saved.get(key) != current[key]]
    if changed:
        raise ReIDError(
            f"{run_dir / STATE_FILE} was trained with different [{'], ['.join(changed)}] "
            "settings; use a new --run-dir, or the original config to resume"
        )
    if state["world_size"] != world_size:
        raise ReIDError(
            f"{run_dir / STATE_FILE} was trained on {state['world_size']} process(es), not "
            f"{world_size}: an exact resume needs the same number"
        )


def backbone_config(config: RunConfig, data: RunData) -> BackboneConfig:
    """The backbone of the run: the model config plus the dataset's classes and cameras."""
    model = config.model
    return BackboneConfig(
        clip_model=model.clip_model,
        clip_config=model.clip_config,
        pretrained=model.pretrained,
        image_size=model.image_size,
        stride=model.stride,
        sie_cameras=data.num_cameras if model.sie else 0,
        sie_coefficient=model.sie_coefficient,
        num_classes=data.num_classes,
    )


def build_method(config: RunConfig, backbone: BackboneConfig) -> torch.nn.Module:
    """The method of the run on a freshly built CLIP (pretrained weights if configured)."""
    from reid.training.methods import METHODS

    clip_model = build_clip(backbone)
    return METHODS[config.method.name](clip_model, backbone, config.method.options)
