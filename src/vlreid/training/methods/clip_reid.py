"""``clip-reid``: CLIP-ReID (Li et al., AAAI 2023), two stages.

Stage ``"prompt"``: each identity gets learnable tokens in ``"A photo of a X X X X person."``;
both encoders are frozen and only those tokens learn, with the supervised contrastive losses
``L_i2t + L_t2i`` between the identity's text feature and image features computed once before
the stage (eval mode, no SIE, no augmentation, as CLIP-ReID's stage-1 loader). Adam 3.5e-4,
weight decay 1e-4, 120 epochs with 5 warm-up epochs and a cosine schedule (loop settings).

Stage ``"image"``: the identity text features are computed once and frozen; the image encoder
learns with ``0.25 * ID + 1.0 * triplet (3 features) + 1.0 * L_i2tce`` (Adam 5e-6, biases x2,
60 epochs, 10 warm-up, x0.1 at epochs 30 and 50, P x K = 16 x 4). The prompt tokens never change.

Stage-1 batches need only ``labels`` and ``relpaths`` (the cached features are looked up by
``relpath``); CLIP-ReID draws them as shuffled batches of 64 over the training images.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import open_clip
import torch
from torch import nn

from vlreid.method_options import CLIPReIDConfig
from vlreid.model_config import ModelConfig
from vlreid.training.losses import image_to_text_loss, supervised_contrastive_loss
from vlreid.training.methods.base import (
    ImageBranchStage,
    Method,
    MethodOutput,
    Stage,
    image_branch_loss,
    make_output,
    optimizer_groups,
)
from vlreid.training.methods.text import PromptTemplate, TextEncoder

if TYPE_CHECKING:
    from vlreid.datasets.bimodal import ReIDBatch

__all__ = ["CLIPReIDConfig", "CLIPReIDMethod", "ImageStage", "PromptStage"]

logger = logging.getLogger(__name__)


class PromptStage(Stage):
    """Stage 1, ``"prompt"``: only the identity tokens learn, on cached image features.

    :meth:`prepare` needs ``loader``: every training image once (eval transforms, on every rank:
    not sharded); its projected features are cached by ``relpath`` (not saved: recomputed from
    the restored weights after a resume).
    """

    name = "prompt"
    method: CLIPReIDMethod

    def __init__(self, method: CLIPReIDMethod) -> None:
        super().__init__(method)
        embed_dim = method.model.embed_dim
        self.register_buffer("cached_image_features", torch.empty(0, embed_dim), persistent=False)
        self.cache_index: dict[str, int] = {}

    def prepare(self, loader: Iterable[ReIDBatch] | None = None) -> None:
        """Freeze everything but the identity tokens and cache the images' features."""
        self.method.requires_grad_(False)
        if loader is None:
            raise ValueError("the prompt stage needs a loader over the training images")
        self.cache_image_features(loader)
        self.method.prompt_tokens.requires_grad_(True)

    @torch.no_grad()
    def cache_image_features(self, loader: Iterable[ReIDBatch]) -> None:
        """Compute the projected image features of ``loader`` in eval mode, keyed by relpath."""
        model = self.method.model
        was_training = model.training
        model.eval()
        features: list[torch.Tensor] = []
        relpaths: list[str] = []
        for batch in loader:
            output = model.encode(batch["images"].to(self.method.device))
            features.append(output.projected.float())
            relpaths.extend(batch["relpaths"])
        model.train(was_training)
        self.cached_image_features = torch.cat(features)
        self.cache_index = {relpath: index for index, relpath in enumerate(relpaths)}
        logger.info("cached the features of %d training images", len(relpaths))

    def cached_features(self, relpaths: list[str]) -> torch.Tensor:
        """The cached image features ``(B, E)`` of ``relpaths``."""
        missing = [relpath for relpath in relpaths if relpath not in self.cache_index]
        if missing:
            raise KeyError(f"images not cached by the prompt stage's prepare: {missing[:3]}")
        index = torch.tensor([self.cache_index[relpath] for relpath in relpaths])
        return self.cached_image_features[index.to(self.cached_image_features.device)]

    def param_groups(self) -> list[dict[str, Any]]:
        """The identity tokens, at ``prompt_lr``."""
        config = self.method.config
        return optimizer_groups(
            "prompt",
            iter([("prompt_tokens", self.method.prompt_tokens)]),
            config.prompt_lr,
            config.prompt_weight_decay,
        )

    def prompt_loss(self, batch: ReIDBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``L_i2t + L_t2i`` on cached image features, and its terms."""
        method = self.method
        labels = batch["labels"].to(method.device)
        image_features = self.cached_features(batch["relpaths"])
        text_features = method.identity_text_features(labels)
        tau = method.config.contrastive_temperature
        i2t = supervised_contrastive_loss(image_features, text_features, labels, labels, tau)
        t2i = supervised_contrastive_loss(text_features, image_features, labels, labels, tau)
        return i2t + t2i, {"i2t": i2t, "t2i": t2i}

    def forward(self, batch: ReIDBatch) -> MethodOutput:
        """Stage-1 contrastive loss of one batch (``labels`` and ``relpaths`` only)."""
        return make_output(*self.prompt_loss(batch))


class ImageStage(ImageBranchStage):
    """Stage 2, ``"image"``: the ReID model learns, guided by frozen identity text features.

    :meth:`prepare` computes one text feature per identity from the current prompt tokens (call
    it again after a resume); the prompt tokens and the text encoder stay frozen.
    """

    method: CLIPReIDMethod

    def __init__(self, method: CLIPReIDMethod) -> None:
        super().__init__(method)
        embed_dim = method.model.embed_dim
        self.register_buffer("class_text_features", torch.empty(0, embed_dim), persistent=False)

    def prepare(self, loader: Iterable[ReIDBatch] | None = None) -> None:
        """Freeze the text side, cache the identity text features, train the ReID model."""
        self.method.requires_grad_(False)
        self.cache_class_text_features()
        self.method.model.set_trainable(True)

    @torch.no_grad()
    def cache_class_text_features(self) -> None:
        """Compute and freeze one text feature per identity."""
        method = self.method
        labels = torch.arange(method.prompt_tokens.shape[0], device=method.device)
        chunks = labels.split(method.config.text_batch_size)
        features = [method.identity_text_features(chunk).float() for chunk in chunks]
        self.class_text_features = torch.cat(features)

    def image_loss(self, batch: ReIDBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Image-branch loss plus ``L_i2tce`` against the frozen identity text features."""
        if self.class_text_features.shape[0] == 0:
            raise RuntimeError("call prepare() of the image stage before training it")
        method, labels = self.method, batch["labels"]
        output = method.model.encode(batch["images"], method.camids_for(batch))
        loss, terms = image_branch_loss(method.model, output, labels, method.config)
        i2t = image_to_text_loss(
            output.projected, self.class_text_features, labels, method.config.label_smoothing
        )
        terms["i2tce"] = i2t
        return loss + method.config.image_to_text_weight * i2t, terms


class CLIPReIDMethod(Method):
    """CLIP-ReID: identity prompt learning, then image fine-tuning guided by the prompts.

    Args:
        clip_model: CLIP providing the vision weights and the (frozen) text tower.
        model_config: Architecture of the ReID model (``num_classes`` > 0).
        config: Options.
    """

    name = "clip-reid"
    config_class = CLIPReIDConfig
    stage_classes: tuple[type[Stage], ...] = (PromptStage, ImageStage)
    config: CLIPReIDConfig

    def __init__(
        self,
        clip_model: open_clip.CLIP,
        model_config: ModelConfig,
        config: CLIPReIDConfig | None = None,
    ) -> None:
        super().__init__(clip_model, model_config, config)
        self.text_encoder = TextEncoder(clip_model)
        self.template = PromptTemplate(self.text_encoder, self.config.prompt)
        tokens = torch.empty(
            model_config.num_classes, self.template.num_placeholders, self.text_encoder.width
        )
        self.prompt_tokens = nn.Parameter(tokens.normal_(std=self.config.prompt_init_std))

    def identity_text_features(self, labels: torch.Tensor) -> torch.Tensor:
        """Text features ``(B, E)`` of the identities ``labels`` ``(B,)``."""
        prompts = self.template(self.prompt_tokens[labels])
        return self.text_encoder(prompts, self.template.token_ids).features
