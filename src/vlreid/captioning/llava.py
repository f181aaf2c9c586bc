"""LLaVA-family captioning with transformers' ``AutoProcessor`` and ``AutoModelForImageTextToText``.

Any checkpoint those Auto classes load works (llava-1.5, LLaVA-NeXT, LLaVA-OneVision), from a hub
id or a local folder. Generation is greedy with **left padding**, so that a batch gives the same
answers as one image at a time (right padding puts pad tokens between the prompt and the answer).

ReID crops are tall (about 1:2). llava-1.5's processor resizes the shortest side and centre-crops a
square, which cuts off the head and the feet; like LLaVA's own ``expand2square`` we pad each crop
to a square with the processor's mean colour before the processor sees it (transformers 5's
``LlavaImageProcessor(do_pad=True)`` does the same, but not every checkpoint's processor has that
option, and a square image passes through any processor unchanged). Models whose number of
image tokens depends on the image size (everything but plain ``llava``) get batches grouped by
size, so that no image-token run is padded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import groupby
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from vlreid.captioning.builtin import builtin_model_path, is_builtin
from vlreid.captioning.protocol import CaptionItem
from vlreid.errors import ReIDError
from vlreid.hub import hub_access
from vlreid.paths import looks_like_path

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "llava-hf/llava-1.5-7b-hf"
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
FIXED_IMAGE_TOKEN_MODELS: frozenset[str] = frozenset({"llava"})
"""Model types whose image-token count does not depend on the image size."""


@dataclass(frozen=True)
class LlavaSettings:
    """How to load and run the model.

    Attributes:
        model: Hub id, local folder written by ``save_pretrained``, or ``builtin:NAME``
            (:mod:`vlreid.captioning.builtin`).
        max_new_tokens: Longest answer, in tokens.
        dtype: ``auto`` (bfloat16 or float16 on GPU, float32 on CPU) or a key of :data:`DTYPES`.
        load_in_4bit: Quantise the weights to 4 bits with bitsandbytes (CUDA only).
        load_in_8bit: Quantise the weights to 8 bits with bitsandbytes (CUDA only).
        device: ``cpu``, ``cuda``, ``cuda:1``...; ``None``: the rank's GPU if any, else CPU.
        pad_to_square: Pad each crop to a square before the processor.
    """

    model: str = DEFAULT_MODEL
    max_new_tokens: int = 80
    dtype: str = "auto"
    load_in_4bit: bool = False
    load_in_8bit: bool = False
    device: str | None = None
    pad_to_square: bool = True


def resolve_device(device: str | None, local_rank: int = 0) -> torch.device:
    """The device to run on: ``device`` if given, else this rank's GPU, else the CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """Turn ``auto`` or a dtype name into a :class:`torch.dtype`.

    Raises:
        ReIDError: Unknown name.
    """
    if dtype == "auto":
        if device.type != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if dtype not in DTYPES:
        raise ReIDError(f"unknown dtype {dtype!r}: expected auto or one of {sorted(DTYPES)}")
    return DTYPES[dtype]


def padding_fill(processor: Any) -> tuple[int, int, int]:
    """The RGB colour to pad with: the image processor's mean (mid-grey if it has none)."""
    mean = getattr(processor.image_processor, "image_mean", None) or (0.5, 0.5, 0.5)
    return tuple(int(round(255 * channel)) for channel in mean[:3])  # type: ignore[return-value]


def pad_to_square(image: Image.Image, fill: tuple[int, int, int]) -> Image.Image:
    """Centre ``image`` on a square canvas of its longer side, filled with ``fill`` (RGB)."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new("RGB", (side, side), fill)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def generation_settings(settings: LlavaSettings) -> dict[str, Any]:
    """What changes the answers besides model and template: greedy, max tokens, padding."""
    return {
        "decoding": "greedy",
        "max_new_tokens": settings.max_new_tokens,
        "pad_to_square": settings.pad_to_square,
    }


def load_llava(settings: LlavaSettings, device: torch.device) -> tuple[Any, Any]:
    """Load the processor (left padding) and the model in eval mode.

    Raises:
        ReIDError: Missing folder, unknown built-in model, unloadable checkpoint, or
            quantisation without CUDA.
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if is_builtin(settings.model):  # builtin:NAME -> the folder shipped in the package
        settings = replace(settings, model=str(builtin_model_path(settings.model)))

    local = looks_like_path(settings.model)
    if local and not Path(settings.model).expanduser().is_dir():
        raise ReIDError(
            f"model folder not found: {settings.model} (expected a folder written by "
            f"save_pretrained, or a hub id such as {DEFAULT_MODEL})"
        )
    kwargs: dict[str, Any] = {"dtype": resolve_dtype(settings.dtype, device)}
    if settings.load_in_4bit or settings.load_in_8bit:
        if device.type != "cuda":
            raise ReIDError("--load-in-4bit / --load-in-8bit need a CUDA device (bitsandbytes)")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=settings.load_in_4bit,
            load_in_8bit=settings.load_in_8bit,
            bnb_4bit_compute_dtype=kwargs["dtype"],
        )
        kwargs["device_map"] = {"": device}
    model_path = str(Path(settings.model).expanduser()) if local else settings.model
    cache_only = None if local else hub_access(settings.model)  # seconds, not minutes
    if cache_only is not None:
        kwargs["local_files_only"] = True
    try:
        processor = AutoProcessor.from_pretrained(model_path, local_files_only=bool(cache_only))
        model = AutoModelForImageTextToText.from_pretrained(model_path, **kwargs)
    except (OSError, ValueError) as error:
        if cache_only is not None:
            raise _not_cached_error(settings.model, cache_only) from error
        raise ReIDError(f"cannot load captioning model {settings.model}: {error}") from error
    if "device_map" not in kwargs:
        model = model.to(device)
    processor.tokenizer.padding_side = "left"
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return model.eval(), processor


def _not_cached_error(model_id: str, reason: str) -> ReIDError:
    """The one line for a hub id that must come from the cache (``reason``) and is not there."""
    return ReIDError(
        f"cannot load model {model_id}: {reason} and it is not in the local Hugging Face cache; "
        f"pass a local folder instead (--model DIR, a folder written by save_pretrained, e.g. "
        f"`hf download {model_id} --local-dir DIR` on a machine with network)"
    )


def build_prompt(processor: Any, instruction: str) -> str:
    """The model's chat form of one user turn: an image, then ``instruction``."""
    conversation = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}
    ]
    if getattr(processor, "chat_template", None) is None:
        return f"USER: <image>\n{instruction} ASSISTANT:"  # llava-1.5's form
    return processor.apply_chat_template(conversation, add_generation_prompt=True)


@torch.inference_mode()
def generate_answers(
    model: Any,
    processor: Any,
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    max_new_tokens: int,
) -> list[str]:
    """Greedy answers for a batch of (image, prompt) pairs, left-padded.

    Args:
        model: An image-text-to-text model.
        processor: Its processor, with ``tokenizer.padding_side == "left"``.
        images: B RGB images (already padded to square if wanted).
        prompts: B prompts in the model's chat form, each with one image placeholder.
        max_new_tokens: Longest answer.

    Returns:
        B decoded answers, special tokens removed.
    """
    inputs = processor(images=list(images), text=list(prompts), return_tensors="pt", padding=True)
    inputs = inputs.to(model.device)
    if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
    output_ids = model.generate(
        **inputs,
        do_sample=False,
        num_beams=1,
        max_new_tokens=max_new_tokens,
        pad_token_id=processor.tokenizer.pad_token_id,
    )
    new_tokens = output_ids[:, inputs["input_ids"].shape[1] :]
    return processor.batch_decode(new_tokens, skip_special_tokens=True)


class LlavaCaptioner:
    """The ``llava`` backend: one model per process, batched greedy generation.

    Args:
        settings: Model and generation settings.
        instruction: The template's instruction.
        local_rank: This process's rank on its node (picks the GPU).
        loaded: An already loaded ``(model, processor)`` to use instead of loading
            ``settings.model`` (e.g. a model built in memory by benchmarks/gpu.py).
    """

    name = "llava"
    needs_images = True

    def __init__(
        self,
        settings: LlavaSettings,
        instruction: str,
        local_rank: int = 0,
        loaded: tuple[Any, Any] | None = None,
    ) -> None:
        self.config = settings
        self.model = settings.model
        self.device = resolve_device(settings.device, local_rank)
        if loaded is None:
            self.network, self.processor = load_llava(settings, self.device)
        else:
            self.network, self.processor = loaded
            self.processor.tokenizer.padding_side = "left"
        self.prompt = build_prompt(self.processor, instruction)
        self.fill = padding_fill(self.processor)
        model_type = getattr(self.network.config, "model_type", "")
        self.group_by_size = model_type not in FIXED_IMAGE_TOKEN_MODELS

    def settings(self) -> dict[str, Any]:
        """What changes the answers besides model and template (:func:`generation_settings`)."""
        return generation_settings(self.config)

    def runtime(self) -> dict[str, Any]:
        """How the model ran (recorded, not checked on resume): dtype, quantisation, prompt."""
        return {
            "dtype": str(self.network.dtype),
            "load_in_4bit": self.config.load_in_4bit,
            "load_in_8bit": self.config.load_in_8bit,
            "prompt": self.prompt,
        }

    def describe(self, items: Sequence[CaptionItem]) -> list[str]:
        """Answer the instruction for each item's image (see :func:`generate_answers`)."""
        images = [self._prepare(item) for item in items]
        answers: list[str] = [""] * len(images)
        order = list(range(len(images)))
        if self.group_by_size:
            order.sort(key=lambda index: images[index].size)
        groups = groupby(order, key=lambda i: images[i].size if self.group_by_size else None)
        for _, group in groups:
            indices = list(group)
            generated = generate_answers(
                self.network,
                self.processor,
                [images[i] for i in indices],
                [self.prompt] * len(indices),
                self.config.max_new_tokens,
            )
            for index, answer in zip(indices, generated, strict=True):
                answers[index] = answer
        return answers

    def _prepare(self, item: CaptionItem) -> Image.Image:
        if item.image is None:
            raise ValueError(f"{item.relpath}: the llava captioner needs the decoded image")
        return pad_to_square(item.image, self.fill) if self.config.pad_to_square else item.image
