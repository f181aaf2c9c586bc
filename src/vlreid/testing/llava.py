"""A tiny, randomly initialised LLaVA for tests, benchmarks and the CPU demo.

It is a real ``LlavaForConditionalGeneration`` (CLIP vision tower, two-layer MLP projector, Llama
language model) with a word-level tokenizer trained locally on the caption template's words, a
llava-1.5 chat template and a ``LlavaProcessor``, all written with ``save_pretrained``. Load it
exactly like a hub checkpoint, through ``AutoProcessor`` / ``AutoModelForImageTextToText`` on the
folder: nothing is downloaded.

Its image processor is llava-1.5's (resize the shortest side, centre crop, no padding), so that a
captioner must pad tall ReID crops to square itself, as with the real checkpoint. The processor
counts ``num_additional_image_tokens = 1`` for the CLS token of the CLIP tower; with the
``default`` feature strategy (CLS dropped) an image is ``(image_size // patch_size) ** 2`` tokens.

Example::

    folder = build_tiny_llava(tmp_path / "tiny-llava", TinyLlavaConfig(seed=0))
    # python -m vlreid.testing tiny-llava DIR   does the same from the shell
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaImageProcessor,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from vlreid.templates import Template, load_template, render_caption

logger = logging.getLogger(__name__)

SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<unk>", "<s>", "</s>", "<image>")
IMAGE_TOKEN = "<image>"

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% else %}ASSISTANT: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>\n{% else %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{% if message['role'] == 'user' %} {% else %}</s>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
"""llava-1.5's conversation form: ``USER: <image>\\n{instruction} ASSISTANT:``."""


@dataclass(frozen=True)
class TinyLlavaConfig:
    """Sizes of the tiny LLaVA (defaults: about 0.2M parameters, built in well under a second).

    Attributes:
        image_size: Side of the square image the vision tower takes.
        patch_size: ViT patch size; an image is ``(image_size // patch_size) ** 2`` tokens.
        vision_hidden_size: Width of the CLIP vision tower.
        vision_layers: Depth of the CLIP vision tower.
        vision_heads: Attention heads of the vision tower.
        text_hidden_size: Width of the Llama language model.
        text_layers: Depth of the language model.
        text_heads: Attention heads of the language model.
        max_position_embeddings: Longest prompt + answer, in tokens.
        initializer_range: Standard deviation of the random weights.
        templates: Caption templates whose words the tokenizer must cover.
        captions_per_template: Random captions of each template added to the tokenizer corpus.
        seed: Seed of the weights and of the corpus.
    """

    image_size: int = 32
    patch_size: int = 8
    vision_hidden_size: int = 32
    vision_layers: int = 2
    vision_heads: int = 2
    text_hidden_size: int = 64
    text_layers: int = 2
    text_heads: int = 2
    max_position_embeddings: int = 512
    initializer_range: float = 0.02
    templates: tuple[str, ...] = ("person", "vehicle")
    captions_per_template: int = 200
    seed: int = 0


def tokenizer_corpus(templates: list[Template], captions_per_template: int, seed: int) -> list[str]:
    """Sentences that cover every word the tiny model reads or writes.

    The instruction, every phrase and synonym of every field, and random canonical captions.
    """
    rng = random.Random(seed)
    lines = ["USER: ASSISTANT:"]
    for template in templates:
        lines.append(template.instruction)
        for spec in template.fields.values():
            lines += [spec.missing] + [
                form for value in spec.values.values() for form in value.surface_forms
            ]
        for _ in range(captions_per_template):
            attributes = {
                name: rng.choice(list(spec.values)) for name, spec in template.fields.items()
            }
            lines.append(render_caption(template, attributes))
    return [line for line in lines if line]


def build_tokenizer(corpus: list[str]) -> PreTrainedTokenizerFast:
    """Train a lower-case word-level tokenizer on ``corpus`` (Llama-style ``<s>`` prefix).

    It decodes with spaces between words and punctuation (``"a man , wearing a t - shirt ."``):
    :func:`vlreid.templates.normalize_answer` undoes that before parsing.
    """
    backend = Tokenizer(models.WordLevel(unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS), min_frequency=1)
    backend.train_from_iterator(corpus, trainer=trainer)
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", backend.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
        padding_side="left",
        model_max_length=1 << 30,
    )


def build_processor(config: TinyLlavaConfig, tokenizer: PreTrainedTokenizerFast) -> LlavaProcessor:
    """llava-1.5's processor at the tiny image size (shortest-side resize + centre crop)."""
    image_processor = LlavaImageProcessor(
        size={"shortest_edge": config.image_size},
        crop_size={"height": config.image_size, "width": config.image_size},
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=config.patch_size,
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,
    )


def build_model(
    config: TinyLlavaConfig, tokenizer: PreTrainedTokenizerFast
) -> LlavaForConditionalGeneration:
    """The randomly initialised model, seeded by ``config.seed``."""
    vision_config = CLIPVisionConfig(
        hidden_size=config.vision_hidden_size,
        intermediate_size=2 * config.vision_hidden_size,
        num_hidden_layers=config.vision_layers,
        num_attention_heads=config.vision_heads,
        image_size=config.image_size,
        patch_size=config.patch_size,
        projection_dim=config.vision_hidden_size,
        initializer_range=config.initializer_range,
    )
    text_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.text_hidden_size,
        intermediate_size=2 * config.text_hidden_size,
        num_hidden_layers=config.text_layers,
        num_attention_heads=config.text_heads,
        num_key_value_heads=config.text_heads,
        max_position_embeddings=config.max_position_embeddings,
        initializer_range=config.initializer_range,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    llava_config = LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=(config.image_size // config.patch_size) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(config.seed)
    model = LlavaForConditionalGeneration(llava_config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def build_tiny_llava(out_dir: Path, config: TinyLlavaConfig | None = None) -> Path:
    """Build the tiny LLaVA and write it to ``out_dir`` with ``save_pretrained``.

    Args:
        out_dir: Folder to write (created; files in it are overwritten).
        config: Sizes and seed; defaults to :class:`TinyLlavaConfig`.

    Returns:
        ``out_dir``, loadable with ``AutoProcessor.from_pretrained`` and
        ``AutoModelForImageTextToText.from_pretrained``.
    """
    config = config or TinyLlavaConfig()
    templates = [load_template(name) for name in config.templates]
    corpus = tokenizer_corpus(templates, config.captions_per_template, config.seed)
    tokenizer = build_tokenizer(corpus)
    processor = build_processor(config, tokenizer)
    model = build_model(config, tokenizer)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    processor.save_pretrained(out_dir)
    model.save_pretrained(out_dir)
    parameters = sum(parameter.numel() for parameter in model.parameters())
    logger.info(
        "tiny LLaVA (%d parameters, vocabulary %d) written to %s",
        parameters,
        len(tokenizer),
        out_dir,
    )
    return out_dir
