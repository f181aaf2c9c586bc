"""``baseline``: the CLIP image encoder fine-tuned with ID + triplet losses, no text.

This is CLIP-ReID's "CLIP baseline" (its ``train.py`` with ``configs/person/vit_base.yml``): one
stage, Adam at 5e-6 (biases x2), label-smoothed ID loss (epsilon 0.1) on both BNNeck classifiers
and batch-hard triplet loss (margin 0.3) on the three features, weights 1 and 1.
"""

from __future__ import annotations

from vlreid.method_options import BaselineConfig
from vlreid.training.methods.base import ImageBranchStage, Method

__all__ = ["BaselineConfig", "BaselineMethod"]


class BaselineMethod(Method):
    """ID + triplet fine-tuning of the CLIP image encoder: one :class:`ImageBranchStage`.

    Args:
        clip_model: CLIP whose vision weights initialise the model (its text tower is unused).
        model_config: Architecture of the ReID model (``num_classes`` > 0).
        config: Loss weights and optimizer settings.
    """

    name = "baseline"
    config_class = BaselineConfig
    stage_classes = (ImageBranchStage,)
    config: BaselineConfig
