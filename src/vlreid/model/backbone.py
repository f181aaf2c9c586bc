"""CLIP's image encoder adapted to person ReID, as CLIP-ReID (Li et al., AAAI 2023) adapts it.

open_clip builds the vision tower; this module changes only what ReID needs:

- ViT: the patch-embedding convolution takes a configurable stride (16, or 12 for overlapping
  16x16 patches) and the positional embedding is resized bilinearly to the input grid,
  ``((H - P) // S + 1) x ((W - P) // S + 1)``: 16x8 at 256x128 with stride 16, 21x10 with stride 12.
- Optional side-information embedding (SIE, from TransReID): one learned vector per camera, scaled
  by ``sie_coefficient`` and added to the CLS token before the positional embedding.
- ModifiedResNet (RN50): the last stage keeps stride 1 (output stride 16) and the attention-pool
  positional embedding is resized to the ``H/16 x W/16`` grid.
- Three features: CLS after the second-to-last block (ResNet: pooled stage-3 map), CLS after the
  last block (ResNet: pooled stage-4 map) and the projected CLS (ResNet: attention-pool output);
  a BNNeck (BatchNorm1d with a frozen zero bias) and a bias-free classifier on the last two.

:class:`ReIDModel` is the only inference path: ``model(images, camids) -> (B, width + embed_dim)``,
the L2-normalised concatenation of the pre-BN last-block CLS and the pre-BN projected CLS
(1280-d for ViT-B/16). It is rebuilt from a :class:`ModelConfig` alone (JSON metadata of a
checkpoint) and holds no text module. Its imports are torch, open_clip and ``vlreid.model.vision``
(the tower changes); never transformers or caption code.
"""

from __future__ import annotations

import copy
import logging
import math
from typing import Any, NamedTuple

import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import _build_vision_tower  # builds the vision tower alone (no text tower)
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import VisionTransformer
from torch import nn

from vlreid.errors import ReIDError
from vlreid.model.pretrained import load_weights, loads_weights, pretrained_file
from vlreid.model.vision import (
    adapt_resnet,
    adapt_vit,
    attention_pool_tokens,
    resize_positional_embedding,
)
from vlreid.model_config import ModelConfig

logger = logging.getLogger(__name__)


BackboneConfig = ModelConfig
"""The former name of :class:`~vlreid.model_config.ModelConfig` (kept while branches merge)."""


def clip_architecture(config: ModelConfig) -> dict[str, Any]:
    """The open_clip model config (``embed_dim``, ``vision_cfg``, ``text_cfg``, ``quick_gelu``)."""
    if config.clip_config is not None:
        architecture = copy.deepcopy(dict(config.clip_config))
    else:
        architecture = open_clip.get_model_config(config.clip_model)
        if architecture is None:
            raise ReIDError(
                f"unknown open_clip model {config.clip_model!r}; expected a name from "
                "open_clip.list_models() such as 'ViT-B-16' or 'RN50', or an explicit clip_config"
            )
    architecture.setdefault("quick_gelu", config.quick_gelu)
    if architecture["vision_cfg"].get("timm_model_name"):
        raise ReIDError("timm vision towers are not supported: use an OpenAI-style ViT or RN")
    return architecture


class BackboneOutput(NamedTuple):
    """Training features of one batch.

    Attributes:
        penultimate: ``(B, D1)`` CLS after the second-to-last block (ResNet: pooled stage 3).
        final: ``(B, D2)`` CLS after the last block and ``ln_post`` (ResNet: pooled stage 4).
        projected: ``(B, E)`` projected CLS (ResNet: attention-pool output).
        tokens: ``(B, N, E)`` projected patch tokens (ResNet: attention-pool outputs per cell).
    """

    penultimate: torch.Tensor
    final: torch.Tensor
    projected: torch.Tensor
    tokens: torch.Tensor


class NeckOutput(NamedTuple):
    """Identity logits ``(B, num_classes)`` from the BNNecks of ``final`` and ``projected``."""

    logits: torch.Tensor
    projected_logits: torch.Tensor


class ReIDModel(nn.Module):
    """CLIP image encoder + BNNecks + classifiers; ``forward`` gives the inference feature.

    Args:
        config: The architecture. Weights are randomly initialised; see :func:`build_reid_model`.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.sie and not config.sie_cameras:
            raise ReIDError(
                "model.sie needs the number of cameras: build the model from "
                "config.for_dataset(num_classes, num_cameras)"
            )
        self.config = config
        architecture = clip_architecture(config)
        vision_cfg = dict(architecture["vision_cfg"])
        self.is_vit = not isinstance(vision_cfg.get("layers", 12), (list, tuple))
        if self.is_vit:
            vision_cfg["image_size"] = list(config.image_size)
        self.embed_dim = int(architecture["embed_dim"])
        self.visual = _build_vision_tower(
            self.embed_dim, vision_cfg, quick_gelu=bool(architecture["quick_gelu"])
        )
        if self.is_vit:
            self.grid_size = adapt_vit(self.visual, config.image_size, config.stride)
            self.penultimate_dim = self.final_dim = self.visual.transformer.width
        else:
            if config.sie_cameras:
                raise ReIDError("SIE is defined for ViT backbones only (as in CLIP-ReID)")
            self.grid_size = adapt_resnet(self.visual, config.image_size)
            self.final_dim = self.visual.attnpool.k_proj.in_features
            self.penultimate_dim = self.final_dim // 2
        self.sie_embedding: nn.Parameter | None = None
        if config.sie_cameras:
            self.sie_embedding = nn.Parameter(torch.zeros(config.sie_cameras, self.final_dim))
            nn.init.trunc_normal_(self.sie_embedding, std=0.02)
        self.bottleneck = _bnneck(self.final_dim)
        self.bottleneck_projected = _bnneck(self.embed_dim)
        self.classifier: nn.Linear | None = None
        self.classifier_projected: nn.Linear | None = None
        if config.num_classes:
            self.classifier = _classifier(self.final_dim, config.num_classes)
            self.classifier_projected = _classifier(self.embed_dim, config.num_classes)

    @property
    def feature_dim(self) -> int:
        """Size of the inference feature: ``final_dim + embed_dim``."""
        return self.final_dim + self.embed_dim

    def encode(self, images: torch.Tensor, camids: torch.Tensor | None = None) -> BackboneOutput:
        """Features of ``images`` ``(B, 3, H, W)``; ``camids`` ``(B,)`` feed SIE when enabled."""
        if self.is_vit:
            return self._encode_vit(images, camids)
        return self._encode_resnet(images)

    def neck(self, output: BackboneOutput) -> NeckOutput:
        """Identity logits of the BNNeck'd ``final`` and ``projected`` features."""
        if self.classifier is None or self.classifier_projected is None:
            raise RuntimeError("this ReIDModel was built with num_classes=0: it has no classifier")
        return NeckOutput(
            self.classifier(self.bottleneck(output.final)),
            self.classifier_projected(self.bottleneck_projected(output.projected)),
        )

    def forward(self, images: torch.Tensor, camids: torch.Tensor | None = None) -> torch.Tensor:
        """Inference feature ``(B, final_dim + embed_dim)``, L2-normalised, in any mode."""
        output = self.encode(images, camids)
        return F.normalize(torch.cat([output.final, output.projected], dim=1), dim=1)

    def set_trainable(self, trainable: bool) -> None:
        """Set ``requires_grad`` of every parameter; the BNNeck biases always stay frozen."""
        for parameter in self.parameters():
            parameter.requires_grad_(trainable)
        self.bottleneck.bias.requires_grad_(False)
        self.bottleneck_projected.bias.requires_grad_(False)

    def load_clip_visual(self, visual: nn.Module) -> None:
        """Copy an open_clip vision tower's weights, resizing its positional embedding."""
        state = visual.state_dict()
        if self.is_vit:
            key, source_grid = "positional_embedding", tuple(visual.grid_size)
        else:
            key = "attnpool.positional_embedding"
            side = math.isqrt(state[key].shape[0] - 1)
            source_grid = (side, side)
        if source_grid != tuple(self.grid_size):
            logger.info(
                "resizing the positional embedding from %s to %s", source_grid, self.grid_size
            )
        state[key] = resize_positional_embedding(state[key], source_grid, self.grid_size)
        self.visual.load_state_dict(state, strict=True)

    def _encode_vit(self, images: torch.Tensor, camids: torch.Tensor | None) -> BackboneOutput:
        visual: VisionTransformer = self.visual
        x = visual.conv1(images).flatten(2).transpose(1, 2)  # (B, N, width)
        cls_token = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        if self.sie_embedding is not None and camids is not None:
            camera = self.config.sie_coefficient * self.sie_embedding[camids]
            cls_token = cls_token + camera.unsqueeze(1).to(x.dtype)
        x = torch.cat([cls_token, x], dim=1) + visual.positional_embedding.to(x.dtype)
        x = visual.ln_pre(x)
        transformer = visual.transformer
        if not transformer.batch_first:
            x = x.transpose(0, 1)
        for block in transformer.resblocks[:-1]:
            x = block(x)
        penultimate = x
        x = transformer.resblocks[-1](x)
        if not transformer.batch_first:
            x, penultimate = x.transpose(0, 1), penultimate.transpose(0, 1)
        x = visual.ln_post(x)
        projected = x @ visual.proj  # (B, 1 + N, E)
        return BackboneOutput(penultimate[:, 0], x[:, 0], projected[:, 0], projected[:, 1:])

    def _encode_resnet(self, images: torch.Tensor) -> BackboneOutput:
        visual: ModifiedResNet = self.visual
        x = visual.layer2(visual.layer1(visual.stem(images)))
        stage3 = visual.layer3(x)
        stage4 = visual.layer4(stage3)
        pooled = attention_pool_tokens(visual.attnpool, stage4)  # (B, 1 + N, E)
        return BackboneOutput(
            stage3.mean(dim=(2, 3)), stage4.mean(dim=(2, 3)), pooled[:, 0], pooled[:, 1:]
        )


def _bnneck(dim: int) -> nn.BatchNorm1d:
    neck = nn.BatchNorm1d(dim)
    neck.bias.requires_grad_(False)  # BNNeck (Luo et al. 2019): no shift
    return neck


def _classifier(dim: int, num_classes: int) -> nn.Linear:
    classifier = nn.Linear(dim, num_classes, bias=False)
    nn.init.normal_(classifier.weight, std=0.001)
    return classifier


def build_clip(config: ModelConfig) -> open_clip.CLIP:
    """The full open_clip CLIP (text tower included) at its native size, with pretrained weights.

    Methods use its text tower; :func:`build_reid_model` copies its vision weights. The weights
    file is found (or fetched) before the model is built, so a missing one fails in seconds
    (:func:`vlreid.model.pretrained.pretrained_file`).
    """
    architecture = clip_architecture(config)
    weights = pretrained_file(config.clip_model, config.pretrained)
    model = open_clip.CLIP(**architecture)
    if weights is not None:
        what = config.clip_model
        if config.clip_config is not None:
            what = (
                "model.clip_config (for builtin:tiny-clip-synthetic use its open_clip_config.json)"
            )
        load_weights(model, weights, what)
    return model.eval()


def build_reid_model(config: ModelConfig, clip_model: open_clip.CLIP | None = None) -> ReIDModel:
    """A :class:`ReIDModel` with the vision weights of ``clip_model`` (or of :func:`build_clip`).

    Without ``clip_model`` and without ``config.pretrained`` the model stays randomly initialised.
    """
    model = ReIDModel(config)
    if clip_model is None and loads_weights(config.pretrained):
        clip_model = build_clip(config)
    if clip_model is not None:
        model.load_clip_visual(clip_model.visual)
    return model
