"""``baseline``: the CLIP image encoder fine-tuned with ID + triplet losses, no text.

This is CLIP-ReID's "CLIP baseline" (its ``train.py`` with ``configs/person/vit_base.yml``): one
stage, Adam at 5e-6 (biases x2), label-smoothed ID loss (epsilon 0.1) on both BNNeck classifiers
and batch-hard triplet loss (margin 0.3) on the three features, weights 1 and 1.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import open_clip

from vlreid.model.backbone import BackboneConfig, build_reid_model
from vlreid.training.methods.base import (
    ImageBranchConfig,
    Method,
    MethodOutput,
    image_branch_loss,
    make_output,
    optimizer_groups,
)

if TYPE_CHECKING:
    from vlreid.datasets.bimodal import ReIDBatch


@dataclass(frozen=True)
class BaselineConfig(ImageBranchConfig):
    """Options of ``baseline``: the image-branch settings only (see :class:`ImageBranchConfig`)."""


class BaselineMethod(Method):
    """ID + triplet fine-tuning of the CLIP image encoder.

    Args:
        clip_model: CLIP whose vision weights initialise the model (its text tower is unused).
        backbone: Architecture of the ReID model (``num_classes`` > 0).
        config: Loss weights and optimizer settings.
    """

    name = "baseline"
    stages = ("image",)
    config_class = BaselineConfig

    def __init__(
        self,
        clip_model: open_clip.CLIP,
        backbone: BackboneConfig,
        config: BaselineConfig | None = None,
    ) -> None:
        super().__init__(build_reid_model(backbone, clip_model))
        self.config = config or BaselineConfig()

    def prepare_stage(self, stage: str, loader: Iterable[ReIDBatch] | None = None) -> None:
        """Make the whole model trainable (no cache, ``loader`` unused)."""
        self.check_stage(stage)
        self.model.set_trainable(True)

    def param_groups(self, stage: str) -> list[dict[str, Any]]:
        """One learning rate for the encoder, necks and classifiers (biases x bias_lr_factor)."""
        self.check_stage(stage)
        config = self.config
        return optimizer_groups(
            "model",
            self.model.named_parameters(),
            config.lr,
            config.weight_decay,
            config.bias_lr_factor,
        )

    def forward(self, batch: ReIDBatch, stage: str) -> MethodOutput:
        """ID + triplet loss of a P x K batch."""
        output = self.model.encode(batch["images"], self.camids_for(batch))
        loss, terms = image_branch_loss(self.model, output, batch["labels"], self.config)
        return make_output(loss, terms)
