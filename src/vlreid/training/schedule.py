"""Optimizers and epoch-wise learning-rate schedules of a stage (see :class:`StageConfig`).

The rate of every parameter group is its base rate (from the method's ``param_groups``) times
:func:`learning_rate_factor` of the epoch, set once at the start of each epoch, as CLIP-ReID
steps its schedulers. The factor is a pure function of the epoch, so the schedule has no state of
its own: the optimizer's state (which keeps each group's base rate) and the epoch resume it.
"""

from __future__ import annotations

import bisect
import math
from typing import Any

import torch

from vlreid.config import StageConfig
from vlreid.errors import ReIDError


def learning_rate_factor(config: StageConfig, epoch: int) -> float:
    """Factor of the base learning rate in ``epoch`` (1-based) of a stage.

    Implements CLIP-ReID's ``WarmupMultiStepLR`` (``multistep``) and timm's
    ``CosineLRScheduler`` without restarts (``cosine``), both stepped with the 1-based epoch.
    """
    if epoch < config.warmup_epochs:
        progress = epoch / config.warmup_epochs
        if config.schedule == "multistep":
            warmup = config.warmup_factor * (1 - progress) + progress
            return warmup * config.gamma ** bisect.bisect_right(config.milestones, epoch)
        return config.warmup_factor + (1 - config.warmup_factor) * progress
    if config.schedule == "multistep":
        return config.gamma ** bisect.bisect_right(config.milestones, epoch)
    if config.schedule == "cosine":
        cosine = 0.5 * (1 + math.cos(math.pi * min(epoch, config.epochs) / config.epochs))
        return config.min_lr_factor + (1 - config.min_lr_factor) * cosine
    return 1.0


def build_optimizer(config: StageConfig, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """The stage's optimizer over ``groups`` (each with its own ``lr`` and ``weight_decay``).

    Raises:
        ReIDError: No trainable parameter, or an unknown optimizer name.
    """
    if not any(group["params"] for group in groups):
        raise ReIDError("the stage has no trainable parameter")
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, betas=config.betas)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, betas=config.betas)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=config.momentum)
    raise ReIDError(f"unknown optimizer {config.optimizer!r}; expected adam, adamw or sgd")


def set_learning_rates(
    optimizer: torch.optim.Optimizer, config: StageConfig, epoch: int
) -> list[float]:
    """Set every group's ``lr`` to its base rate times the factor of ``epoch`` (1-based).

    The base rate is kept in the group as ``initial_lr`` (saved with the optimizer's state).

    Returns:
        The learning rate of each group.
    """
    factor = learning_rate_factor(config, epoch)
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
        group["lr"] = group["initial_lr"] * factor
    return [group["lr"] for group in optimizer.param_groups]
