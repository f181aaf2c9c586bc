"""Resume state of a training run (``state.pt``): optimizer, fp16 loss scale, position, RNG.

``state.pt`` (``torch.save``) holds everything a resume needs; it is written to a temporary name
and moved into place with ``os.replace``, so an existing file is always whole. It holds tensors
and plain containers (dict, list, tuple, str, int, float, bool, None) only, so that it loads with
``torch.load(path, weights_only=True)``, PyTorch's default since 2.6: NumPy's random state (whose
key is an ``ndarray``) is stored as a tensor; Python's is a tuple of ints already. The inference
weights (``model.safetensors``) are the model's file format: :mod:`vlreid.model.weights`.
:func:`save_checkpoint` writes both after an epoch; :class:`Position` is where a run resumes.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vlreid.errors import DataFileError

if TYPE_CHECKING:
    from vlreid.config import RunConfig
    from vlreid.training.methods import Method
    from vlreid.training.report import EpochRecord

STATE_FILE = "state.pt"


def capture_rng_state() -> dict[str, Any]:
    """The global random states of Python, NumPy, torch (CPU and CUDA), as plain values.

    NumPy's legacy state ``(name, keys: uint32 ndarray (624,), pos, has_gauss, cached_gaussian)``
    becomes a dict with the keys as an int64 tensor (``weights_only`` refuses ndarrays).
    """
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    keys = numpy_state["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (
            numpy_state["name"],
            keys,
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_training_state(path: str | Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file, then ``os.replace`` it onto ``path``."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    torch.save(state, temporary)
    os.replace(temporary, path)


def load_training_state(path: str | Path) -> dict[str, Any]:
    """Read a ``state.pt`` written by :func:`save_training_state` (``weights_only=True``).

    Raises:
        DataFileError: The file cannot be read, or holds objects other than tensors and plain
            containers (a ``state.pt`` of an older version, or not ours).
    """
    import pickle

    try:
        return torch.load(Path(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # torch's message is many lines: keep the first
        reason = str(error).strip().splitlines()[0] if str(error).strip() else "refused"
        raise DataFileError(
            f"the resume state {path} holds more than tensors and plain containers, so it does "
            f"not load with weights_only=True ({reason}): written by an older vlreid or another "
            "tool; resume with the version that wrote it, or start a new --run-dir"
        ) from error
    except (OSError, RuntimeError, EOFError) as error:
        raise DataFileError(f"cannot read the resume state {path}: {error}") from error


@dataclass(frozen=True)
class Position:
    """Where a run resumes: the next stage to train, its epochs already done, the steps so far.

    Attributes:
        stage_index: Index of the stage in ``method.stages`` (``len(stages)``: the run is done).
        stage_epoch: Epochs of that stage already trained (0: the stage starts afresh).
        step: Optimizer steps taken so far, over all stages.
    """

    stage_index: int = 0
    stage_epoch: int = 0
    step: int = 0

    @classmethod
    def after(cls, state: dict[str, Any], stage_epochs: Sequence[int]) -> Position:
        """The position after the epoch saved in ``state``; ``stage_epochs``: epochs per stage.

        A saved epoch that ends its stage resumes at the start of the next stage.
        """
        stage_index, stage_epoch = state["stage_index"], state["stage_epoch"]
        if stage_epoch == stage_epochs[stage_index]:
            stage_index, stage_epoch = stage_index + 1, 0
        return cls(stage_index, stage_epoch, state["step"])


def save_checkpoint(
    run_dir: Path,
    config: RunConfig,
    method: Method,
    optimizer: torch.optim.Optimizer,
    record: EpochRecord,
    stage_index: int,
    random_states: list[dict[str, Any]],
    metadata: dict[str, str] | None = None,
    scaler: dict[str, Any] | None = None,
) -> None:
    """Write ``model.safetensors`` and ``state.pt`` after the epoch of ``record`` (rank 0).

    Args:
        run_dir: The run folder.
        config: The run config (embedded in both files).
        method: The method; its ``model`` is the inference checkpoint.
        optimizer: The optimizer of the current stage.
        record: The epoch just trained (position and step).
        stage_index: Index of ``record.stage`` in ``method.stages``.
        random_states: :func:`capture_rng_state` of every rank, in rank order (one per process).
        metadata: More ``model.safetensors`` metadata (the run's provenance digests).
        scaler: The fp16 gradient scaler's state of the current stage (``{}`` or None: none).
    """
    from vlreid.model import WEIGHTS_FILE, save_inference_weights

    position = {"epoch": record.epoch, "stage": record.stage, "stage_index": stage_index}
    extra = {f"reid.{key}": str(value) for key, value in position.items()} | (metadata or {})
    preprocessing = config.model.preprocessing()
    weights = run_dir / WEIGHTS_FILE
    save_inference_weights(weights, method.model, preprocessing, config.to_json(), extra)
    state = {
        **position,
        "stage_epoch": record.stage_epoch,
        "step": record.step,
        "sampler_epoch": record.epoch,
        "config": config.to_dict(),
        "world_size": len(random_states),
        "method": method.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler or {},
        "schedule": {"name": config.stages[record.stage].schedule, "epoch": record.stage_epoch},
        "rng": random_states,
    }
    save_training_state(run_dir / STATE_FILE, state)
