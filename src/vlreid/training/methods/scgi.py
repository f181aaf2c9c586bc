"""``scgi``: CLIP-SCGI (Han et al., arXiv 2410.09382), one stage, trained with synthesized captions.

CLIP-SCGI has no official code and its paper could not be read beyond the abstract and figure
captions, so nothing here is credited to it: each choice is either the unofficial
reimplementation's (NTDuckk/CLIPSCGI, "the reimplementation") or ours, as the :class:`SCGIConfig`
docstring and ``docs/fidelity.md`` say option by option.

Each training image comes with a caption (from the caption shards). The frozen CLIP text encoder
encodes each distinct caption once (cached). Per batch:

1. Image branch (ours; the reimplementation has none): the ReID model's features, ID + triplet
   as ``baseline``.
2. Caption-guided inversion (CGI): the projected image tokens are re-weighted by the caption
   feature (``token_weighting``: the reimplementation's element-wise product, the default since
   the bench in :class:`SCGIConfig`'s docstring, or our softmax of cosine similarities);
   ``num_queries`` learnable queries (2, reimplementation) cross-attend to the patch tokens
   through ``depth`` (1, reimplementation) cross-attention + FFN blocks; a
   ``mapper`` (our 2-layer GELU MLP or the reimplementation's 3-layer ReLU one) maps the queries
   (``query_pooling``: flattened, ours, or averaged, reimplementation), plus a global branch from
   the CLS, to a pseudo-word S* in the text token space. ``"A photo of a S* person."`` goes
   through the frozen text encoder; its feature is aligned with the image feature (our
   identity-aware supervised contrastive loss) and with the caption feature (our cosine loss).
3. Contextual feature fusion (CFF): the pseudo sentence's token outputs cross-attend to the image
   tokens, then ``fusion_layers`` (2, reimplementation) transformer blocks; the end-of-text
   output goes through a BNNeck and a classifier, trained with ID + triplet (reimplementation).

The visual encoder, and by default (``image_heads_lr = "visual"``) the ReID model's BNNecks,
classifiers and SIE, learn at ``lr`` (5e-6) as in ``baseline``; CGI, CFF and the CFF's BNNeck and
classifier at ``new_module_lr`` (5e-5, reimplementation). At inference only the ReID model (image
encoder + neck) is kept (ours; the reimplementation runs CFF on a fixed prompt).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from torch import nn

from vlreid.errors import ReIDError
from vlreid.method_options import SCGIConfig
from vlreid.model_config import ModelConfig
from vlreid.training.losses import identity_loss, supervised_contrastive_loss, triplet_loss
from vlreid.training.methods.base import (
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

__all__ = ["SCGIConfig", "SCGIImageStage", "SCGIMethod"]


def _mapper(kind: str, input_dim: int, hidden_dim: int, output_dim: int) -> nn.Sequential:
    """A CGI mapper: ``"gelu2"`` Linear-GELU-Linear (ours), ``"relu3"`` three Linears (theirs)."""
    if kind == "relu3":
        return nn.Sequential(
            nn.Linear(input_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.ReLU(),
            nn.Linear(hidden_dim, output_dim),
        )
    return nn.Sequential(
        nn.Linear(input_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, output_dim)
    )


class CaptionGuidedInversion(nn.Module):
    """CGI: image tokens guided by a caption -> one pseudo-word embedding ``(B, text_width)``."""

    def __init__(self, embed_dim: int, text_width: int, config: SCGIConfig) -> None:
        super().__init__()
        self.weighting = config.token_weighting
        self.temperature = config.weighting_temperature
        self.query_pooling = config.query_pooling
        self.queries = nn.Parameter(torch.randn(config.num_queries, embed_dim) * embed_dim**-0.5)
        self.blocks = nn.ModuleList(
            ResidualAttentionBlock(embed_dim, config.heads, is_cross_attention=True)
            for _ in range(config.depth)
        )
        hidden = config.mapper_hidden_dim or text_width
        pooled_dim = embed_dim * (config.num_queries if config.query_pooling == "flatten" else 1)
        self.mapper = _mapper(config.mapper, pooled_dim, hidden, text_width)
        self.global_mapper = (
            _mapper(config.mapper, embed_dim, hidden, text_width) if config.global_branch else None
        )

    def reweight(
        self, cls_features: torch.Tensor, tokens: torch.Tensor, caption_features: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CLS ``(B, E)`` and patch tokens ``(B, N, E)`` re-weighted by the caption ``(B, E)``.

        ``"elementwise"``: both multiplied by the raw caption feature (the reimplementation's).
        ``"softmax"``: each patch token scaled by ``N * softmax(cos(token, caption) / t)`` over
        the N tokens, the CLS unchanged (ours).
        """
        if self.weighting == "elementwise":
            caption = caption_features.to(tokens.dtype)
            return cls_features * caption, tokens * caption.unsqueeze(1)
        similarity = torch.einsum(
            "bne,be->bn", F.normalize(tokens, dim=-1), F.normalize(caption_features, dim=-1)
        )
        weights = (similarity / self.temperature).softmax(dim=1) * tokens.shape[1]
        return cls_features, tokens * weights.unsqueeze(-1).to(tokens.dtype)

    def forward(self, cls_features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Pseudo-word ``(B, W)`` from re-weighted CLS ``(B, E)`` and patch tokens ``(B, N, E)``."""
        queries = self.queries.to(tokens.dtype).expand(tokens.shape[0], -1, -1)
        for block in self.blocks:
            queries = block(queries, k_x=tokens, v_x=tokens)
        pooled = queries.flatten(1) if self.query_pooling == "flatten" else queries.mean(dim=1)
        pseudo_word = self.mapper(pooled)
        if self.global_mapper is not None:
            pseudo_word = pseudo_word + self.global_mapper(cls_features)
        return pseudo_word


class ContextualFeatureFusion(nn.Module):
    """CFF: sentence tokens cross-attend to image tokens, then self-attention blocks."""

    def __init__(self, text_width: int, embed_dim: int, config: SCGIConfig) -> None:
        super().__init__()
        self.text_projection = nn.Linear(text_width, embed_dim)
        self.cross = ResidualAttentionBlock(embed_dim, config.heads, is_cross_attention=True)
        self.blocks = nn.ModuleList(
            ResidualAttentionBlock(embed_dim, config.heads) for _ in range(config.fusion_layers)
        )
        self.norm = nn.LayerNorm(embed_dim)

    def forward(
        self, text_tokens: torch.Tensor, image_tokens: torch.Tensor, end_position: int
    ) -> torch.Tensor:
        """Fused feature ``(B, E)`` at ``end_position`` of ``text_tokens`` ``(B, L, W)``."""
        x = self.text_projection(text_tokens[:, : end_position + 1])
        x = self.cross(x, k_x=image_tokens, v_x=image_tokens)
        for block in self.blocks:
            x = block(x)
        return self.norm(x[:, end_position])


class SCGIImageStage(Stage):
    """``"image"``, CLIP-SCGI's one stage: image branch, CGI alignment and CFF, with captions.

    Captions are encoded lazily, each distinct caption once, on first use
    (:meth:`caption_features`; a loop may prefill the cache with all captions). The cache is
    not saved: the frozen encoder recomputes it identically after a resume.
    """

    name = "image"
    method: SCGIMethod

    def __init__(self, method: SCGIMethod) -> None:
        super().__init__(method)
        self.caption_cache: dict[str, torch.Tensor] = {}

    def prepare(self, loader: Iterable[ReIDBatch] | None = None) -> None:
        """Train everything but the text encoder (``loader`` unused)."""
        method = self.method
        method.requires_grad_(False)
        method.model.set_trainable(True)
        for module in (method.inversion, method.fusion, method.fusion_classifier):
            module.requires_grad_(True)
        method.fusion_bottleneck.weight.requires_grad_(True)  # BNNeck: bias stays frozen

    def param_groups(self) -> list[dict[str, Any]]:
        """``visual`` at ``lr``, every other trainable parameter (``new``) at ``new_module_lr``.

        ``visual`` is the visual encoder, plus the ReID model's BNNecks, classifiers and SIE when
        ``image_heads_lr`` is ``"visual"`` (as in ``baseline``); ``"new"`` puts those in ``new``.
        """
        method, config = self.method, self.method.config
        visual_prefix = "model." if config.image_heads_lr == "visual" else "model.visual."
        named = list(method.named_parameters())
        visual = [(name, p) for name, p in named if name.startswith(visual_prefix)]
        new = [
            (name, p) for name, p in named if not name.startswith((visual_prefix, "text_encoder."))
        ]
        options = (config.weight_decay, config.bias_lr_factor)
        return optimizer_groups("visual", iter(visual), config.lr, *options) + optimizer_groups(
            "new", iter(new), config.new_module_lr, *options
        )

    @torch.no_grad()
    def caption_features(self, captions: Sequence[str]) -> torch.Tensor:
        """Frozen text features ``(B, E)`` of ``captions``, each distinct caption encoded once."""
        method, batch_size = self.method, self.method.config.text_batch_size
        missing = sorted(set(captions) - self.caption_cache.keys())
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            features = method.text_encoder.encode(chunk).features.float().cpu()
            self.caption_cache.update(zip(chunk, features, strict=True))
        return torch.stack([self.caption_cache[caption] for caption in captions]).to(method.device)

    def forward(self, batch: ReIDBatch) -> MethodOutput:
        """Image-branch, CGI alignment and CFF losses of one captioned batch."""
        if "captions" not in batch:
            raise ReIDError("scgi trains on captions: give the data a caption folder")
        method, config, labels = self.method, self.method.config, batch["labels"]
        output = method.model.encode(batch["images"], method.camids_for(batch))
        loss, terms = image_branch_loss(method.model, output, labels, config)

        captions = self.caption_features(batch["captions"])
        weighted_cls, weighted_tokens = method.inversion.reweight(
            output.projected, output.tokens, captions
        )
        pseudo_word = method.inversion(weighted_cls, weighted_tokens)
        sentence = method.template(pseudo_word.unsqueeze(1))
        pseudo_text = method.text_encoder(sentence, method.template.token_ids)
        text_features = F.normalize(pseudo_text.features, dim=-1)
        image_features = F.normalize(output.projected, dim=-1)
        temperature = config.alignment_temperature
        image_alignment = supervised_contrastive_loss(
            text_features, image_features, labels, labels, temperature
        ) + supervised_contrastive_loss(image_features, text_features, labels, labels, temperature)
        caption_alignment = (1 - F.cosine_similarity(pseudo_text.features, captions, dim=-1)).mean()

        # CFF reads the re-weighted tokens in the reimplementation's mode, the raw ones in ours
        if config.token_weighting == "elementwise":
            image_tokens = torch.cat([weighted_cls.unsqueeze(1), weighted_tokens], dim=1)
        else:
            image_tokens = torch.cat([output.projected.unsqueeze(1), output.tokens], dim=1)
        fused = method.fusion(pseudo_text.tokens, image_tokens, method.template.end_position)
        fusion_logits = method.fusion_classifier(method.fusion_bottleneck(fused))
        fusion = identity_loss(fusion_logits, labels, config.label_smoothing) + triplet_loss(
            fused, labels, config.triplet_margin
        )

        loss = (
            loss
            + config.image_alignment_weight * image_alignment
            + config.caption_alignment_weight * caption_alignment
            + config.fusion_weight * fusion
        )
        terms.update(
            image_alignment=image_alignment, caption_alignment=caption_alignment, fusion=fusion
        )
        return make_output(loss, terms)


class SCGIMethod(Method):
    """CLIP-SCGI: caption-guided inversion and contextual fusion, image encoder at inference.

    Args:
        clip_model: CLIP providing the vision weights and the frozen text tower.
        model_config: Architecture of the ReID model (``num_classes`` > 0).
        config: Options.
    """

    name = "scgi"
    config_class = SCGIConfig
    stage_classes: tuple[type[Stage], ...] = (SCGIImageStage,)
    config: SCGIConfig

    def __init__(
        self,
        clip_model: open_clip.CLIP,
        model_config: ModelConfig,
        config: SCGIConfig | None = None,
    ) -> None:
        super().__init__(clip_model, model_config, config)
        embed_dim = self.model.embed_dim
        if embed_dim % self.config.heads:
            raise ReIDError(f"scgi heads={self.config.heads} must divide embed_dim={embed_dim}")
        self.text_encoder = TextEncoder(clip_model)
        self.template = PromptTemplate(self.text_encoder, self.config.pseudo_prompt)
        if self.template.num_placeholders != 1:
            raise ReIDError(f"pseudo_prompt {self.config.pseudo_prompt!r} needs exactly one X")
        width = self.text_encoder.width
        self.inversion = CaptionGuidedInversion(embed_dim, width, self.config)
        self.fusion = ContextualFeatureFusion(width, embed_dim, self.config)
        self.fusion_bottleneck = nn.BatchNorm1d(embed_dim)
        self.fusion_classifier = nn.Linear(embed_dim, model_config.num_classes, bias=False)
        nn.init.normal_(self.fusion_classifier.weight, std=0.001)
