"""The interface every training method implements, and the pieces they share.

A method is an ``nn.Module`` that owns a :class:`~vlreid.model.backbone.ReIDModel` (``.model``,
the only part kept for inference) plus whatever it needs for training only: a frozen text
encoder, learned prompts, heads, fusion modules. Its constructor is
``Method(clip_model, model_config, options)``; ``method.stages`` lists its :class:`Stage` objects
in training order (e.g. ``(PromptStage, ImageStage)`` for CLIP-ReID). For each stage:

1. ``stage.prepare(loader)`` sets which parameters are trainable in that stage and builds the
   stage's caches (e.g. CLIP-ReID's image features before stage 1);
2. ``stage.param_groups()`` gives the optimizer groups (each with its ``lr`` and ``weight_decay``);
3. ``stage(batch)`` returns a :class:`MethodOutput` whose ``loss`` is back-propagated.

A stage is an ``nn.Module`` whose only child is its method, so it is what a loop wraps for DDP;
the method does not hold its stages as children, so ``method.state_dict()`` is unchanged by them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import open_clip
import torch
from torch import nn

from vlreid.method_options import ImageBranchConfig
from vlreid.model.backbone import BackboneOutput, ReIDModel, build_reid_model
from vlreid.model_config import ModelConfig
from vlreid.training.losses import identity_loss, triplet_loss

if TYPE_CHECKING:
    from vlreid.datasets.bimodal import ReIDBatch


@dataclass(frozen=True)
class MethodOutput:
    """The loss of one batch and its named terms, kept on the loss's device.

    Attributes:
        loss: The scalar to back-propagate.
        term_names: ``("loss", "id", ...)``: the names of ``term_values``.
        term_values: ``(T,)`` float32, detached: the terms of this batch, ``loss`` first. A loop
            sums them on the device and reads the sums once per epoch.
    """

    loss: torch.Tensor
    term_names: tuple[str, ...]
    term_values: torch.Tensor

    @property
    def terms(self) -> dict[str, float]:
        """The terms as floats (one device-to-host transfer, which waits for the device)."""
        return dict(zip(self.term_names, self.term_values.tolist(), strict=True))


class Stage(nn.Module):
    """One stage of a method: trainable split, optimizer groups and loss (see the module doc).

    Args:
        method: The method whose modules the stage trains (its only child module).

    Class attributes:
        name: The stage's name: its ``[stages.NAME]`` table and its ``stage`` in the metrics.
    """

    name: ClassVar[str]

    def __init__(self, method: Method) -> None:
        super().__init__()
        self.method = method

    def prepare(self, loader: Iterable[ReIDBatch] | None = None) -> None:
        """Freeze/unfreeze parameters for this stage and build its caches."""
        raise NotImplementedError

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer parameter groups: dicts with params, lr, weight_decay, name."""
        raise NotImplementedError

    def forward(self, batch: ReIDBatch) -> MethodOutput:
        """The loss of one training batch."""
        raise NotImplementedError


class ImageBranchStage(Stage):
    """``"image"``: the ReID model trained with ID + triplet losses (``baseline``'s only stage).

    Methods extend it: :meth:`image_loss` returns the loss and its terms, to which a subclass
    adds its own; :meth:`prepare` and :meth:`param_groups` train the whole ReID model.
    """

    name = "image"

    def prepare(self, loader: Iterable[ReIDBatch] | None = None) -> None:
        """Make the whole ReID model trainable (no cache, ``loader`` unused)."""
        self.method.model.set_trainable(True)

    def param_groups(self) -> list[dict[str, Any]]:
        """One learning rate for the encoder, necks and classifiers (biases x bias_lr_factor)."""
        config = self.method.config
        return optimizer_groups(
            "model",
            self.method.model.named_parameters(),
            config.lr,
            config.weight_decay,
            config.bias_lr_factor,
        )

    def image_loss(self, batch: ReIDBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """ID + triplet loss of a P x K batch, and its terms."""
        method = self.method
        output = method.model.encode(batch["images"], method.camids_for(batch))
        return image_branch_loss(method.model, output, batch["labels"], method.config)

    def forward(self, batch: ReIDBatch) -> MethodOutput:
        """ID + triplet loss of a P x K batch."""
        return make_output(*self.image_loss(batch))


class Method(nn.Module):
    """Base class of the training methods (see the module docstring for the protocol).

    Args:
        clip_model: CLIP whose vision weights initialise the model (and whose text tower the
            methods with a text branch take over).
        model_config: Architecture of the ReID model (``num_classes`` > 0).
        config: The method's options; None means the defaults of ``config_class``.

    Class attributes:
        name: The key in ``vlreid.training.methods.METHODS``.
        config_class: The frozen dataclass of the method's options
            (:mod:`vlreid.method_options`), which also names the stages (``stage_names``) and
            says whether the method trains on captions (``needs_captions``).
        stage_classes: The :class:`Stage` classes of ``stages``, in training order.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[ImageBranchConfig]]
    stage_classes: ClassVar[tuple[type[Stage], ...]]

    def __init__(
        self,
        clip_model: open_clip.CLIP,
        model_config: ModelConfig,
        config: ImageBranchConfig | None = None,
    ) -> None:
        super().__init__()
        self.model = build_reid_model(model_config, clip_model)
        if model_config.num_classes <= 0:
            raise ValueError(f"{self.name} needs model_config.num_classes > 0")
        self.config = config or self.config_class()
        # A tuple, not a ModuleList: the stages point back at the method, not the reverse.
        self.stages: tuple[Stage, ...] = tuple(cls(self) for cls in self.stage_classes)

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device

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
    """A :class:`MethodOutput` with ``terms`` (plus ``loss``) stacked on the device, no sync."""
    values = torch.stack([loss.detach().float(), *(t.detach().float() for t in terms.values())])
    return MethodOutput(loss=loss, term_names=("loss", *terms), term_values=values)
