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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import open_clip
import torch
from torch import nn

from vlreid.model.backbone import BackboneConfig, build_reid_model
from vlreid.training.losses import image_to_text_loss, supervised_contrastive_loss
from vlreid.training.methods.base import (
    ImageBranchConfig,
    Method,
    MethodOutput,
    image_branch_loss,
    make_output,
    optimizer_groups,
)
from vlreid.training.methods.text import PromptTemplate, TextEncoder

if TYPE_CHECKING:
    from vlreid.datasets.bimodal import ReIDBatch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CLIPReIDConfig(ImageBranchConfig):
    """Options of ``clip-reid`` (defaults: CLIP-ReID's ``configs/person/vit_clipreid.yml``).

    Attributes:
        id_weight: ID loss weight of stage 2 (0.25).
        image_to_text_weight: Weight of ``L_i2tce`` in stage 2 (1.0).
        prompt: Prompt with one run of ``X`` placeholders, one learned token each (4).
        prompt_init_std: Std of the normal initialisation of the identity tokens (0.02).
        prompt_lr: Stage-1 learning rate (3.5e-4).
        prompt_weight_decay: Stage-1 weight decay (1e-4).
        contrastive_temperature: Temperature of ``L_i2t``/``L_t2i`` (1.0, unnormalised features).
        text_batch_size: Identities encoded at once when computing the stage-2 text features.
    """

    id_weight: float = 0.25
    image_to_text_weight: float = 1.0
    prompt: str = "A photo of a X X X X person."
    prompt_init_std: float = 0.02
    prompt_lr: float = 3.5e-4
    prompt_weight_decay: float = 1e-4
    contrastive_temperature: float = 1.0
    text_batch_size: int = 64


class CLIPReIDMethod(Method):
    """CLIP-ReID: identity prompt learning, then image fine-tuning guided by the prompts.

    Args:
        clip_model: CLIP providing the vision weights and the (frozen) text tower.
        backbone: Architecture of the ReID model (``num_classes`` > 0).
        config: Options.
    """

    name = "clip-reid"
    stages = ("prompt", "image")
    config_class = CLIPReIDConfig

    def __init__(
        self,
        clip_model: open_clip.CLIP,
        backbone: BackboneConfig,
        config: CLIPReIDConfig | None = None,
    ) -> None:
        super().__init__(build_reid_model(backbone, clip_model))
        if backbone.num_classes <= 0:
            raise ValueError(f"{self.name} needs backbone.num_classes > 0")
        self.config = config or self.config_class()
        self.text_encoder = TextEncoder(clip_model)
        self.template = PromptTemplate(self.text_encoder, self.config.prompt)
        tokens = torch.empty(
            backbone.num_classes, self.template.num_placeholders, self.text_encoder.width
        )
        self.prompt_tokens = nn.Parameter(tokens.normal_(std=self.config.prompt_init_std))
        embed_dim = self.model.embed_dim
        self.register_buffer("cached_image_features", torch.empty(0, embed_dim), persistent=False)
        self.register_buffer("class_text_features", torch.empty(0, embed_dim), persistent=False)
        self.cache_index: dict[str, int] = {}

    def identity_text_features(self, labels: torch.Tensor) -> torch.Tensor:
        """Text features ``(B, E)`` of the identities ``labels`` ``(B,)``."""
        prompts = self.template(self.prompt_tokens[labels])
        return self.text_encoder(prompts, self.template.token_ids).features

    def prepare_stage(self, stage: str, loader: Iterable[ReIDBatch] | None = None) -> None:
        """Set the trainable split of ``stage`` and build its cache.

        ``"prompt"`` needs ``loader``: every training image once (eval transforms, on every rank:
        not sharded); its projected features are cached by ``relpath``. ``"image"`` computes the
        identity text features from the current prompt tokens (call it again after a resume).
        """
        self.check_stage(stage)
        self.requires_grad_(False)
        if stage == "prompt":
            if loader is None:
                raise ValueError("the prompt stage needs a loader over the training images")
            self.cache_image_features(loader)
            self.prompt_tokens.requires_grad_(True)
        else:
            self.cache_class_text_features()
            self.model.set_trainable(True)

    @torch.no_grad()
    def cache_image_features(self, loader: Iterable[ReIDBatch]) -> None:
        """Compute the projected image features of ``loader`` in eval mode, keyed by relpath."""
        was_training = self.model.training
        self.model.eval()
        features: list[torch.Tensor] = []
        relpaths: list[str] = []
        for batch in loader:
            output = self.model.encode(batch["images"].to(self.device))
            features.append(output.projected.float())
            relpaths.extend(batch["relpaths"])
        self.model.train(was_training)
        self.cached_image_features = torch.cat(features)
        self.cache_index = {relpath: index for index, relpath in enumerate(relpaths)}
        logger.info("cached the features of %d training images", len(relpaths))

    @torch.no_grad()
    def cache_class_text_features(self) -> None:
        """Compute and freeze one text feature per identity."""
        labels = torch.arange(self.prompt_tokens.shape[0], device=self.device)
        chunks = labels.split(self.config.text_batch_size)
        features = [self.identity_text_features(chunk).float() for chunk in chunks]
        self.class_text_features = torch.cat(features)

    def cached_features(self, relpaths: list[str]) -> torch.Tensor:
        """The cached image features ``(B, E)`` of ``relpaths``."""
        missing = [relpath for relpath in relpaths if relpath not in self.cache_index]
        if missing:
            raise KeyError(f"images not cached by prepare_stage('prompt'): {missing[:3]}")
        index = torch.tensor([self.cache_index[relpath] for relpath in relpaths])
        return self.cached_image_features[index.to(self.cached_image_features.device)]

    def param_groups(self, stage: str) -> list[dict[str, Any]]:
        """``"prompt"``: the identity tokens; ``"image"``: the ReID model."""
        self.check_stage(stage)
        config = self.config
        if stage == "prompt":
            return optimizer_groups(
                "prompt",
                iter([("prompt_tokens", self.prompt_tokens)]),
                config.prompt_lr,
                config.prompt_weight_decay,
            )
        return optimizer_groups(
            "model",
            self.model.named_parameters(),
            config.lr,
            config.weight_decay,
            config.bias_lr_factor,
        )

    def forward(self, batch: ReIDBatch, stage: str) -> MethodOutput:
        """Stage-1 contrastive loss or stage-2 image loss of one batch."""
        self.check_stage(stage)
        if stage == "prompt":
            loss, terms = self.prompt_loss(batch)
        else:
            loss, terms = self.image_loss(batch)
        return make_output(loss, terms)

    def prompt_loss(self, batch: ReIDBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``L_i2t + L_t2i`` on cached image features (stage 1)."""
        labels = batch["labels"].to(self.device)
        image_features = self.cached_features(batch["relpaths"])
        text_features = self.identity_text_features(labels)
        tau = self.config.contrastive_temperature
        i2t = supervised_contrastive_loss(image_features, text_features, labels, labels, tau)
        t2i = supervised_contrastive_loss(text_features, image_features, labels, labels, tau)
        return i2t + t2i, {"i2t": i2t, "t2i": t2i}

    def image_loss(self, batch: ReIDBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Image-branch loss plus ``L_i2tce`` against the frozen identity text features."""
        if self.class_text_features.shape[0] == 0:
            raise RuntimeError("call prepare_stage('image') before the image stage")
        labels = batch["labels"]
        output = self.model.encode(batch["images"], self.camids_for(batch))
        loss, terms = image_branch_loss(self.model, output, labels, self.config)
        i2t = image_to_text_loss(
            output.projected, self.class_text_features, labels, self.config.label_smoothing
        )
        terms["i2tce"] = i2t
        return loss + self.config.image_to_text_weight * i2t, terms
