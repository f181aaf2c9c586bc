"""``svll``: SVLL-ReID (Wang et al., Image and Vision Computing 2025), CLIP-ReID + self-supervision.

The backbone settings of the paper (SIE with coefficient 1.0, patch stride 12) live in the
backbone config; this method adds to :class:`~vlreid.training.methods.clip_reid.CLIPReIDMethod`:

- Stage ``"prompt"`` (language self-supervision): the prompts of the batch's distinct identities
  are copied twice, each element of each copy zeroed with probability ``mask_probability`` (0.5),
  encoded by the frozen text encoder, mapped by an MLP head (512-4096-4096-256 for ViT-B/16) and
  pulled together with SimCLR's NT-Xent (tau 0.1); total ``L_i2t + L_t2i + 0.8 * L_ssl``. The
  official code builds that text head but leaves it out of the optimizer (random init, never
  trained); ``train_text_head`` (default True) trains it with the prompts, False reproduces the
  official behaviour.
- Stage ``"image"`` (vision self-supervision): two augmented views of each image go through the
  image encoder without SIE; their last-block CLS (768-d) goes through an MLP head
  (768-4096-4096-256) and NT-Xent (tau 0.1, weight 0.8) is added to CLIP-ReID's stage-2 loss.
  As the official loader (``datasets/make_dataloader_svllreid.py``, ``augment_transforms``), the
  views are two independent draws of the training transform from the decoded image (flip p 0.5,
  pad 10 + random crop, random erasing with p 0.5 of 33% to 1/3 of the area, noise fill), each
  with its own crop and box, unrelated to the batch image's; the data loader draws them
  (:meth:`~vlreid.method_options.SVLLConfig.view_augmentation`) into the batch's ``views``.
  The image head is initialised as the official ``initialize_mlp`` (:func:`initialize_head`);
  the text head keeps PyTorch's defaults, as there.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import open_clip
import torch
from torch import nn

from vlreid.errors import ReIDError
from vlreid.method_options import SVLLConfig
from vlreid.model_config import ModelConfig
from vlreid.training.losses import nt_xent_loss
from vlreid.training.methods.base import Stage, optimizer_groups
from vlreid.training.methods.clip_reid import CLIPReIDMethod, ImageStage, PromptStage

if TYPE_CHECKING:
    from vlreid.datasets.bimodal import ReIDBatch

__all__ = ["SVLLConfig", "SVLLImageStage", "SVLLMethod", "SVLLPromptStage"]


def projection_head(input_dim: int, hidden_dim: int, output_dim: int) -> nn.Sequential:
    """SimCLR-style MLP: Linear-BN-ReLU, Linear-BN-ReLU, Linear."""
    return nn.Sequential(
        nn.Linear(input_dim, hidden_dim),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, hidden_dim),
        nn.BatchNorm1d(hidden_dim),
        nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, output_dim),
    )


def initialize_head(head: nn.Sequential) -> nn.Sequential:
    """The official image-head initialisation (``initialize_mlp``), in place.

    Linear weights Kaiming-normal (fan-in, ReLU gain: std ``sqrt(2 / fan_in)``), their biases left
    at PyTorch's default; BatchNorm weights and biases uniform on [0, 1].
    """
    for module in head:
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm1d):
            nn.init.uniform_(module.weight)
            nn.init.uniform_(module.bias)
    return head


class SVLLPromptStage(PromptStage):
    """CLIP-ReID's prompt stage plus the language self-supervision (and its text head)."""

    method: SVLLMethod

    def prepare(self, loader: Iterable[ReIDBatch] | None = None) -> None:
        """CLIP-ReID's split, plus the text head if ``train_text_head``."""
        super().prepare(loader)
        self.method.text_head.requires_grad_(self.method.config.train_text_head)

    def param_groups(self) -> list[dict[str, Any]]:
        """The identity tokens and the text head, both at ``prompt_lr``."""
        config = self.method.config
        head = self.method.text_head.named_parameters()
        return super().param_groups() + optimizer_groups(
            "text_head", head, config.prompt_lr, config.prompt_weight_decay, 1.0
        )

    def prompt_loss(self, batch: ReIDBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """CLIP-ReID's stage-1 loss plus the language self-supervision."""
        loss, terms = super().prompt_loss(batch)
        method = self.method
        identities = batch["labels"].to(method.device).unique()
        if identities.numel() < 2:  # BatchNorm and NT-Xent need two samples
            terms["ssl"] = torch.zeros((), device=method.device)
            return loss, terms
        prompts = method.template(method.prompt_tokens[identities])
        probability = method.config.mask_probability
        views = [
            prompts * (torch.rand_like(prompts) >= probability).to(prompts.dtype) for _ in range(2)
        ]
        embeddings = [
            method.text_head(method.text_encoder(view, method.template.token_ids).features)
            for view in views
        ]
        ssl = nt_xent_loss(embeddings[0], embeddings[1], method.config.ssl_temperature)
        terms["ssl"] = ssl
        return loss + method.config.text_ssl_weight * ssl, terms


class SVLLImageStage(ImageStage):
    """CLIP-ReID's image stage plus the vision self-supervision (and its image head)."""

    method: SVLLMethod

    def prepare(self, loader: Iterable[ReIDBatch] | None = None) -> None:
        """CLIP-ReID's split, plus the image head."""
        super().prepare(loader)
        self.method.image_head.requires_grad_(True)

    def param_groups(self) -> list[dict[str, Any]]:
        """The ReID model, and the image head at ``head_lr`` (None: ``lr``)."""
        config = self.method.config
        head = self.method.image_head.named_parameters()
        lr = config.head_lr or config.lr
        return super().param_groups() + optimizer_groups(
            "image_head", head, lr, config.weight_decay, config.bias_lr_factor
        )

    def image_loss(self, batch: ReIDBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """CLIP-ReID's stage-2 loss plus the vision self-supervision on ``batch["views"]``.

        Raises:
            ReIDError: The batch has no ``views`` ``(B, 2, 3, H, W)``.
        """
        views = batch.get("views")
        if views is None or views.ndim != 5 or views.shape[1] != 2:
            found = "none" if views is None else tuple(views.shape)
            raise ReIDError(
                f"svll's image stage needs batch['views'] of shape (B, 2, 3, H, W), found {found}: "
                "build its loader with vlreid.training.data.build_stage_loader (or pass "
                "view_augmentation=SVLLConfig.view_augmentation('image') to build_train_loader)"
            )
        loss, terms = super().image_loss(batch)
        method, config = self.method, self.method.config
        # The two views go through the encoder and the head's BatchNorm separately, as officially.
        embeddings = [
            method.image_head(method.model.encode(views[:, index]).final) for index in range(2)
        ]
        ssl = nt_xent_loss(embeddings[0], embeddings[1], config.ssl_temperature)
        terms["ssl"] = ssl
        return loss + config.image_ssl_weight * ssl, terms


class SVLLMethod(CLIPReIDMethod):
    """SVLL-ReID: CLIP-ReID with language (stage 1) and vision (stage 2) self-supervision."""

    name = "svll"
    config_class = SVLLConfig
    stage_classes: tuple[type[Stage], ...] = (SVLLPromptStage, SVLLImageStage)
    config: SVLLConfig

    def __init__(
        self,
        clip_model: open_clip.CLIP,
        model_config: ModelConfig,
        config: SVLLConfig | None = None,
    ) -> None:
        super().__init__(clip_model, model_config, config or SVLLConfig())
        hidden, output = self.config.head_hidden_dim, self.config.head_output_dim
        self.text_head = projection_head(self.text_encoder.embed_dim, hidden, output)
        self.image_head = initialize_head(projection_head(self.model.final_dim, hidden, output))
