"""Validated inputs of the ranking metrics: labels as int64 tensors on the working device."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vlreid.errors import ReIDError

ArrayLike = np.ndarray | torch.Tensor


class EvaluationError(ReIDError):
    """The inputs of an evaluation are inconsistent (shapes, lengths, no valid query, NaN)."""


@dataclass(frozen=True)
class Labels:
    """Identities and cameras of queries and gallery, as int64 tensors on the working device."""

    q_pids: torch.Tensor
    g_pids: torch.Tensor
    q_camids: torch.Tensor
    g_camids: torch.Tensor
    gallery_by_pid: torch.Tensor
    """``(G,)`` gallery indices sorted by pid (stable), so one pid's items are contiguous."""
    sorted_g_pids: torch.Tensor
    """``(G,)`` ``g_pids[gallery_by_pid]``."""


def to_tensor(values: ArrayLike, device: torch.device) -> torch.Tensor:
    """A tensor on ``device`` sharing memory with ``values`` when possible."""
    if isinstance(values, torch.Tensor):
        return values.detach().to(device)
    return torch.as_tensor(np.asarray(values), device=device)


def _label_tensor(
    name: str, values: ArrayLike, expected: int, device: torch.device
) -> torch.Tensor:
    tensor = to_tensor(values, device)
    if tensor.ndim != 1 or tensor.shape[0] != expected:
        raise EvaluationError(f"{name} has shape {tuple(tensor.shape)}, expected ({expected},)")
    if tensor.is_floating_point():
        if not torch.equal(tensor, tensor.round()):
            raise EvaluationError(f"{name} must hold integers, got fractional values")
    elif tensor.dtype == torch.bool or tensor.is_complex():
        raise EvaluationError(f"{name} must hold integers, got {tensor.dtype}")
    return tensor.to(torch.int64)


def check_labels(
    num_query: int,
    num_gallery: int,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    device: torch.device,
) -> Labels:
    """Validate label lengths against ``Q`` and ``G`` and move them to ``device`` as int64."""
    if num_query == 0:
        raise EvaluationError("no query to evaluate (0 query items)")
    if num_gallery == 0:
        raise EvaluationError("the gallery is empty (0 gallery items)")
    if num_gallery > 2**31:
        raise EvaluationError(f"gallery of {num_gallery} items exceeds the 2**31 supported")
    gallery_pids = _label_tensor("g_pids", g_pids, num_gallery, device)
    sorted_g_pids, gallery_by_pid = torch.sort(gallery_pids, stable=True)
    return Labels(
        q_pids=_label_tensor("q_pids", q_pids, num_query, device),
        g_pids=gallery_pids,
        q_camids=_label_tensor("q_camids", q_camids, num_query, device),
        g_camids=_label_tensor("g_camids", g_camids, num_gallery, device),
        gallery_by_pid=gallery_by_pid,
        sorted_g_pids=sorted_g_pids,
    )
