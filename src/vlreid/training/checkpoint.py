"""Resume state of a training run (``state.pt``): optimizer, scheduler, position, RNG.

``state.pt`` (``torch.save``) holds everything a resume needs; it is written to a temporary name
and moved into place with ``os.replace``, so an existing file is always whole. The inference
weights (``model.safetensors``) are the model's file format: :mod:`vlreid.model.weights`.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlreid.errors import DataFileError

STATE_FILE = "state.pt"


def capture_rng_state() -> dict[str, Any]:
    """The global random states of Python, NumPy, torch (CPU and CUDA)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
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
    """Read a ``state.pt`` written by :func:`save_training_state` (a trusted, local file).

    Raises:
        DataFileError: The file cannot be read.
    """
    try:
        return torch.load(Path(path), map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as error:
        raise DataFileError(f"cannot read the resume state {path}: {error}") from error
