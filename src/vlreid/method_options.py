"""The options of each training method: frozen dataclasses that import nothing heavy.

``[method]`` of a run config is one of these (``name`` picks the class in :data:`METHOD_OPTIONS`);
the methods themselves (:mod:`vlreid.training.methods`, torch and open_clip) take them. They live
here, beside :mod:`vlreid.config`, so that reading a TOML file never imports torch. Each class
also names the method's stages (``stage_names``: the ``[stages.NAME]`` tables a config needs),
whether it trains on captions (``needs_captions``) and which stages' batches carry extra augmented
views of each image (:meth:`ImageBranchConfig.view_augmentation`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from vlreid.errors import ReIDError


@dataclass(frozen=True)
class ImageBranchConfig:
    """Optimizer and loss settings of the image branch shared by all methods.

    Class attributes (not options): ``stage_names``, the method's stages in training order, and
    ``needs_captions``, whether its training batches must carry captions.

    Attributes:
        lr: Learning rate of the image encoder (5e-6 in CLIP-ReID, SVLL-ReID and CLIP-SCGI).
        weight_decay: Weight decay (1e-4).
        bias_lr_factor: Biases get ``lr * bias_lr_factor`` (CLIP-ReID's ``BIAS_LR_FACTOR`` 2).
        id_weight: Weight of the identity loss, summed over the two classifiers.
        triplet_weight: Weight of the triplet loss, summed over the three features.
        triplet_margin: Batch-hard triplet margin (0.3); None means soft margin.
        label_smoothing: Epsilon of the label-smoothed cross-entropies (0.1).
    """

    stage_names: ClassVar[tuple[str, ...]] = ("image",)
    needs_captions: ClassVar[bool] = False

    lr: float = 5e-6
    weight_decay: float = 1e-4
    bias_lr_factor: float = 2.0
    id_weight: float = 1.0
    triplet_weight: float = 1.0
    triplet_margin: float | None = 0.3
    label_smoothing: float = 0.1

    def view_augmentation(self, stage: str) -> dict[str, Any] | None:
        """The training-transform options of the extra views that the batches of ``stage`` carry.

        Returns:
            Options of :class:`vlreid.datasets.transforms.TrainTransform` that override
            ``data.augmentation`` for two more independent draws from each decoded image (the
            batches' ``views``), or None when the stage takes none (every stage here).
        """
        return None


@dataclass(frozen=True)
class BaselineConfig(ImageBranchConfig):
    """Options of ``baseline``: the image-branch settings only (see :class:`ImageBranchConfig`)."""


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

    stage_names: ClassVar[tuple[str, ...]] = ("prompt", "image")

    id_weight: float = 0.25
    image_to_text_weight: float = 1.0
    prompt: str = "A photo of a X X X X person."
    prompt_init_std: float = 0.02
    prompt_lr: float = 3.5e-4
    prompt_weight_decay: float = 1e-4
    contrastive_temperature: float = 1.0
    text_batch_size: int = 64


@dataclass(frozen=True)
class SVLLConfig(CLIPReIDConfig):
    """Options of ``svll`` (defaults: SVLL-ReID's ``configs/person/vit_svllreid.yml``).

    Attributes:
        mask_probability: Probability of zeroing each prompt-embedding element (0.5).
        text_ssl_weight: Weight of the stage-1 NT-Xent (0.8).
        image_ssl_weight: Weight of the stage-2 NT-Xent (0.8).
        ssl_temperature: NT-Xent temperature (0.1).
        head_hidden_dim: Hidden width of both MLP heads (4096; smaller for tiny models).
        head_output_dim: Output width of both MLP heads (256).
        train_text_head: Train the stage-1 text head with the prompts (the official code does not).
        head_lr: Stage-2 learning rate of the image head; None means ``lr`` (official).
        view_erasing_probability: Probability of erasing one box of a stage-2 view (the
            official ``INPUT.RE_PROB`` 0.5).
        view_erasing_area: Range of the erased fraction of a view (the official
            ``RandomErasing(min_area=0.33, max_area=1/3)``: about a third).
        view_flip_probability: Probability of flipping a view horizontally (``INPUT.PROB`` 0.5).
    """

    mask_probability: float = 0.5
    text_ssl_weight: float = 0.8
    image_ssl_weight: float = 0.8
    ssl_temperature: float = 0.1
    head_hidden_dim: int = 4096
    head_output_dim: int = 256
    train_text_head: bool = True
    head_lr: float | None = None
    view_erasing_probability: float = 0.5
    view_erasing_area: tuple[float, float] = (0.33, 1 / 3)
    view_flip_probability: float = 0.5

    def view_augmentation(self, stage: str) -> dict[str, Any] | None:
        """Stage ``image`` takes the two views of its self-supervision; ``prompt`` none.

        Each view is the training transform of the main image (``data.augmentation``: resize,
        flip, pad + random crop, normalise, erasing), drawn again from the decoded image with the
        view's flip and erasing options, as the official ``augment_transforms``.
        """
        if stage != "image":
            return None
        return {
            "flip_probability": self.view_flip_probability,
            "erasing_probability": self.view_erasing_probability,
            "erasing_area": self.view_erasing_area,
        }


@dataclass(frozen=True)
class SCGIConfig(ImageBranchConfig):
    """Options of ``scgi``. ``lr`` (5e-6) is the visual encoder's learning rate.

    Attributes:
        new_module_lr: Learning rate of the modules CLIP does not have (5e-5, from the paper):
            CGI, CFF, the BNNecks, classifiers and SIE embedding.
        num_queries: CGI learnable queries K (2, the paper's best; swept in its Fig. 4).
        depth: CGI cross-attention + FFN blocks (1, the paper's best; swept in its Fig. 4).
        heads: Attention heads of CGI and CFF (8 = 512 / 64, CLIP's head width; must divide
            the embedding size).
        weighting_temperature: Softmax temperature of the caption re-weighting of image tokens.
            Not given by the paper: weights are ``N * softmax(cos(token, caption) / t)`` so that
            uniform similarity leaves the tokens unchanged; 0.1 lets a few tokens dominate.
        mapper_hidden_dim: Hidden width of the CGI MLPs; None means the text width (the paper
            says "a small MLP" only).
        global_branch: Add the MLP of the projected CLS to S* (the paper's global branch).
        pseudo_prompt: Sentence holding the pseudo-word (one ``X``).
        alignment_temperature: Temperature of the identity-aware contrastive loss between
            pseudo-text and image features. Not given: CLIP's initial 0.07 on L2-normalised
            features (CLIP-ReID's unnormalised temperature 1 does not transfer to normalised ones).
        image_alignment_weight: Weight of that contrastive loss (1.0; not given).
        caption_alignment_weight: Weight of ``1 - cos(pseudo-text, caption)`` (1.0; not given).
            A cosine rather than a contrastive loss because captions of different identities
            often coincide (same clothes), which would make false negatives.
        fusion_layers: CFF transformer blocks after the cross-attention (2, from the paper).
        fusion_weight: Weight of the CFF's ID + triplet losses (1.0; not given).
        text_batch_size: Captions encoded at once when filling the caption cache.
    """

    needs_captions: ClassVar[bool] = True

    new_module_lr: float = 5e-5
    num_queries: int = 2
    depth: int = 1
    heads: int = 8
    weighting_temperature: float = 0.1
    mapper_hidden_dim: int | None = None
    global_branch: bool = True
    pseudo_prompt: str = "A photo of a X person."
    alignment_temperature: float = 0.07
    image_alignment_weight: float = 1.0
    caption_alignment_weight: float = 1.0
    fusion_layers: int = 2
    fusion_weight: float = 1.0
    text_batch_size: int = 256


METHOD_OPTIONS: dict[str, type[ImageBranchConfig]] = {
    "baseline": BaselineConfig,
    "clip-reid": CLIPReIDConfig,
    "svll": SVLLConfig,
    "scgi": SCGIConfig,
}


def method_config(name: str, options: Mapping[str, Any] | None = None) -> ImageBranchConfig:
    """The options of method ``name`` with ``options`` overriding its defaults (untyped values).

    Raises:
        ReIDError: ``name`` or an option key is unknown (the message lists the valid ones).
    """
    if name not in METHOD_OPTIONS:
        raise ReIDError(f"unknown method {name!r}; valid methods: {sorted(METHOD_OPTIONS)}")
    options_class = METHOD_OPTIONS[name]
    valid = [field.name for field in dataclasses.fields(options_class)]
    unknown = sorted(set(options or {}) - set(valid))
    if unknown:
        raise ReIDError(f"unknown option(s) {unknown} for method {name!r}; valid: {valid}")
    return options_class(**dict(options or {}))
