"""The interface every training method implements, and the pieces they share.

A method is an ``nn.Module`` that owns a :class:`~vlreid.model.backbone.ReIDModel` (``.model``,
the only part kept for inference) plus whatever it needs for training only: a frozen text
encoder, learned prompts, heads, fusion modules. Its constructor is
``Method(clip_model, backbone_config, method_config)``; then, for each stage of ``stages``:

1. ``prepare_stage(stage, loader)`` sets which parameters are trainable in that stage and builds
   the stage's caches (e.g. CLIP-ReID's image features before stage 1);
2. ``param_groups(stage)`` gives the optimizer groups (each with its ``lr`` and ``weight_decay``);
3. ``forward(batch, stage)`` returns a :class:`MethodOutput` whose ``loss`` is back-propagated.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from vlreid.model.backbone import BackboneOutput, ReIDModel
from vlreid.training.losses import LABEL_SMOOTHING, TRIPLET_MARGIN, identity_loss, triplet_loss

if TYPE_CHECKING:
    from vlreid.datasets.bimodal import ReIDBatch


@dataclass(frozen=True)
class MethodOutput:
    """The loss of one batch and its named terms (detached floats, for logging)."""

    loss: torch.Tensor
    terms: dict[str, float]


@dataclass(frozen=True)
class ImageBranchConfig:
    """Optimizer and loss settings of the image branch shared by all methods.

    Attributes:
        lr: Learning rate of the image encoder (5e-6 in CLIP-ReID, SVLL-ReID and CLIP-SCGI).
        weight_decay: Weight decay (1e-4).
        bias_lr_factor: Biases get ``lr * bias_lr_factor`` (CLIP-ReID's ``BIAS_LR_FACTOR`` 2).
        id_weight: Weight of the identity loss, summed over the two classifiers.
        triplet_weight: Weight of the triplet loss, summed over the three features.
        triplet_margin: Batch-hard triplet margin; None means soft margin.
        label_smoothing: Epsilon of the label-smoothed cross-entropies.
    """

    lr: float = 5e-6
    weight_decay: float = 1e-4
    bias_lr_factor: float = 2.0
    id_weight: float = 1.0
    triplet_weight: float = 1.0
    triplet_margin: float | None = TRIPLET_MARGIN
    label_smoothing: float = LABEL_SMOOTHING


class Method(nn.Module):
    """Base class of the training methods (see the module docstring for the protocol).

    Class attributes:
        name: The key in ``vlreid.training.methods.METHODS``.
        stages: Stage names, in training order.
        config_class: The frozen dataclass of the method's options.
        needs_captions: Whether training batches must carry captions (``data.captions``).
    """

    name: ClassVar[str]
    stages: ClassVar[tuple[str, ...]]
    config_class: ClassVar[type]
    needs_captions: ClassVar[bool] = False

    def __init__(self, model: ReIDModel) -> None:
        super().__init__()
        self.model = model

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device

    def check_stage(self, stage: str) -> None:
        """Raise ``ValueError`` naming the valid stages if ``stage`` is not one of them."""
        if stage not in self.stages:
            raise ValueError(f"{self.name} has no stage {stage!r}; its stages: {self.stages}")

    def prepare_stage(self, stage: str, loader: Iterable[ReIDBatch] | None = None) -> None:
        """Freeze/unfreeze parameters for ``stage`` and build its caches."""
        raise NotImplementedError

    def param_groups(self, stage: str) -> list[dict[str, Any]]:
        """Optimizer parameter groups of ``stage``: dicts with params, lr, weight_decay, name."""
        raise NotImplementedError

    def forward(self, batch: ReIDBatch, stage: str) -> MethodOutput:
        """The loss of one training batch in ``stage``."""
        raise NotImplementedError

    def camids_for(self, batch: ReIDBatch) -> torch.Tensor | None:
        """The batch's camera ids if the model uses SIE, else None."""
        return batch["camids"] if self.model.sie_embedding is not None else None


def optimizer_groups(
    name: str,
    named_parameters: Iterator[tuple[str, nn.Parameter]],
    lr: float,
    weight_decay: float,
    bias_lr_factor: float = 1.0,
) -> list[dict[str, Any]]:
    """Split trainable parameters into a weight group and a bias group (CLIP-ReID's rule).

    Parameters whose name contains ``bias`` get ``lr * bias_lr_factor``; frozen parameters
    (``requires_grad`` False) are left out, and so are empty groups.
    """
    weights: list[nn.Parameter] = []
    biases: list[nn.Parameter] = []
    for parameter_name, parameter in named_parameters:
        if parameter.requires_grad:
            (biases if "bias" in parameter_name else weights).append(parameter)
    groups = [
        {"name": name, "params": weights, "lr": lr, "weight_decay": weight_decay},
        {
            "name": f"{name}.bias",
            "params": biases,
            "lr": lr * bias_lr_factor,
            "weight_decay": weight_decay,
        },
    ]
    return [group for group in groups if group["params"]]


def image_branch_loss(
    model: ReIDModel, output: BackboneOutput, labels: torch.Tensor, config: ImageBranchConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """ID loss on both BNNeck classifiers plus triplet loss on the three features.

    This is CLIP-ReID's image-branch objective (``loss/make_loss.py``), used by every method:
    ``id_weight * (CE(final) + CE(projected)) + triplet_weight * sum of triplets``.
    """
    logits = model.neck(output)
    identity = identity_loss(logits.logits, labels, config.label_smoothing) + identity_loss(
        logits.projected_logits, labels, config.label_smoothing
    )
    triplet = sum(
        triplet_loss(features, labels, config.triplet_margin)
        for features in (output.penultimate, output.final, output.projected)
    )
    loss = config.id_weight * identity + config.triplet_weight * triplet
    return loss, {"id": identity, "triplet": triplet}


def make_output(loss: torch.Tensor, terms: dict[str, torch.Tensor]) -> MethodOutput:
    """A :class:`MethodOutput` with ``terms`` (plus ``loss``) as floats, read in one transfer."""
    names = ["loss", *terms]
    values = torch.stack([loss.detach().float(), *(t.detach().float() for t in terms.values())])
    return MethodOutput(loss=loss, terms=dict(zip(names, values.tolist(), strict=True)))
