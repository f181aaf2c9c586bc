"""Mixed precision of training (``train.mixed_precision``): autocast, and fp16 loss scaling.

The loop owns it rather than ``accelerate``, whose fp16 runs on accelerators only (on CPU it
trains in fp32 without saying so) and whose gradient scaler lives outside our ``state.pt``:

- ``bf16``: the forward pass under ``torch.autocast(device, torch.bfloat16)``, no scaler;
- ``fp16``: the forward pass under ``torch.autocast(device, torch.float16)`` and a
  ``torch.amp.GradScaler`` per stage, as CLIP-ReID trains both of its stages (``amp.autocast``
  and ``amp.GradScaler()`` in ``processor/processor_clipreid_stage{1,2}.py``). The scaler's state
  is saved with every checkpoint, so that a resumed fp16 run continues with the same loss scale;
- ``no``: float32.

The weights and the optimizer stay float32 in every mode. Evaluation runs in float32 whatever
the mode, as in the official code and in ``reid evaluate``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from vlreid.config import TrainConfig

DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}
"""Autocast dtype of each mixed-precision mode (``no`` has none)."""


def resolve_mixed_precision(mixed_precision: str, cpu: bool) -> str:
    """``auto`` -> ``bf16`` on a GPU that supports it, else ``no``; other values unchanged."""
    if mixed_precision != "auto":
        return mixed_precision
    on_gpu = torch.cuda.is_available() and not cpu
    return "bf16" if on_gpu and torch.cuda.is_bf16_supported() else "no"


class MixedPrecision:
    """Autocast and loss scaling of one stage's training steps.

    Args:
        config: The run's options (``mixed_precision``, resolved with ``cpu``).
        device: The device the stage trains on (autocast and the scaler are per device type).

    Attributes:
        mode: The resolved mode: ``no``, ``bf16`` or ``fp16``.
        scaler: The fp16 ``torch.amp.GradScaler``, else None.
    """

    def __init__(self, config: TrainConfig, device: torch.device) -> None:
        mode = resolve_mixed_precision(config.mixed_precision, config.cpu)
        self.mode = mode
        self.device_type = device.type
        self.dtype = DTYPES.get(mode)
        self.scaler = torch.amp.GradScaler(device.type) if mode == "fp16" else None

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The context of a forward pass."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss to back-propagate (multiplied by the loss scale in fp16)."""
        return loss if self.scaler is None else self.scaler.scale(loss)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """One optimizer step; in fp16 it unscales the gradients, skips the step if any is not
        finite, and updates the loss scale."""
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        """The scaler's state (plain numbers; ``{}`` without a scaler), for ``state.pt``."""
        return {} if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (a no-op without a scaler or for ``{}``)."""
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
