"""The pieces of a run that the loop builds before training: precision, backbone, method.

Also the checks made before any work (captions given to a method that needs them, a ``state.pt``
in the run folder that belongs to the same run) and two small helpers of the loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vlreid.config import RunConfig
from vlreid.errors import ReIDError
from vlreid.model.backbone import BackboneConfig, build_clip
from vlreid.training.checkpoint import STATE_FILE
from vlreid.training.data import RunData

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


def build_run_method(config: RunConfig, backbone: BackboneConfig) -> torch.nn.Module:
    """The method of the run on a freshly built CLIP (pretrained weights if configured)."""
    from vlreid.training.methods import METHODS

    clip_model = build_clip(backbone)
    return METHODS[config.method.name](clip_model, backbone, config.method.options)


def check_captions_given(config: RunConfig) -> None:
    """Refuse, before any data is read, a method that trains on captions without a caption folder.

    Raises:
        ReIDError: ``method.name`` needs captions and ``data.captions`` is empty.
    """
    from vlreid.training.methods import METHODS

    if METHODS[config.method.name].needs_captions and not config.data.captions:
        raise ReIDError(
            f"method {config.method.name!r} trains on captions but data.captions is empty: give "
            "the caption folder written by reid caption (--set data.captions=DIR)"
        )


def move_batch(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch with its tensors on ``device`` (lists of strings stay)."""
    return {
        key: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
        for key, value in batch.items()
    }


def group_learning_rates(optimizer: Any, learning_rates: list[float]) -> dict[str, float]:
    """Learning rate per parameter-group name."""
    names = [group.get("name", str(i)) for i, group in enumerate(optimizer.param_groups)]
    return dict(zip(names, learning_rates, strict=True))
