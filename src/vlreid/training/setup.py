"""The pieces of a run that the loop builds before training: accelerator, method, progress bar.

Also the checks made before any work (captions given to a method that needs them, a ``state.pt``
in the run folder that belongs to the same run) and two small helpers of the loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

# At import, not in progress_bar: importing rich.progress draws from Python's global random
# state, which must happen before train() seeds it, as it always has.
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from vlreid.config import RunConfig, TrainConfig
from vlreid.errors import ReIDError
from vlreid.method_options import METHOD_OPTIONS
from vlreid.model.backbone import build_clip
from vlreid.training.checkpoint import STATE_FILE, load_training_state
from vlreid.training.data import RunData
from vlreid.training.methods import METHODS, Method

RESUME_KEYS: tuple[str, ...] = ("model", "method", "stages")


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


def build_run_method(config: RunConfig, data: RunData) -> Method:
    """The method of the run on a freshly built CLIP (pretrained weights if configured).

    The model config gets the dataset's classes and cameras (:meth:`ModelConfig.for_dataset`).
    """
    model_config = config.model.for_dataset(data.num_classes, data.num_cameras)
    clip_model = build_clip(model_config)
    return METHODS[config.method.name](clip_model, model_config, config.method.options)


def check_captions_given(config: RunConfig) -> None:
    """Refuse, before any data is read, a method that trains on captions without a caption folder.

    Raises:
        ReIDError: ``method.name`` needs captions and ``data.captions`` is empty.
    """
    if METHOD_OPTIONS[config.method.name].needs_captions and not config.data.captions:
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


def read_resume_state(run_dir: Path, config: RunConfig, world_size: int) -> dict[str, Any] | None:
    """The ``state.pt`` of ``run_dir`` if there is one, checked by :func:`check_resumable`."""
    if not (run_dir / STATE_FILE).is_file():
        return None
    state = load_training_state(run_dir / STATE_FILE)
    check_resumable(state, config, world_size, run_dir)
    return state


def build_accelerator(config: TrainConfig) -> Any:
    """The ``accelerate.Accelerator`` of a run: device and DDP options.

    Its mixed precision is always ``no``: the loop runs autocast and fp16 loss scaling itself
    (:mod:`vlreid.training.precision`), also on CPU, with the scaler in the resume state.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    ddp_options = DistributedDataParallelKwargs(
        find_unused_parameters=True,  # a stage may leave some trainable module unused
        broadcast_buffers=False,  # caches are buffers; BN statistics are unused at inference
    )
    return Accelerator(
        cpu=config.cpu,
        mixed_precision="no",
        kwargs_handlers=[ddp_options],
    )


def progress_bar(show: bool) -> Any:
    """A rich progress display (one task per epoch), drawn when ``show``."""
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, disable=not show, transient=True)
