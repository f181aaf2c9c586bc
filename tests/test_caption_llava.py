"""The tiny LLaVA and the llava backend: reload, image tokens, batching, padding, preprocessing."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlreid.captioning.llava import (
    LlavaCaptioner,
    LlavaSettings,
    generate_answers,
    pad_to_square,
    resolve_dtype,
)
from vlreid.captioning.protocol import CaptionItem
from vlreid.errors import ReIDError
from vlreid.templates import load_template, render_caption
from vlreid.testing.__main__ import main as reid_testing_main
from vlreid.testing.llava import TinyLlavaConfig, build_tiny_llava

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory) -> Path:
    """Written by ``python -m vlreid.testing tiny-llava DIR`` (its main, in process)."""
    folder = tmp_path_factory.mktemp("tiny-llava")
    reid_testing_main(["tiny-llava", str(folder), "--seed", "0"])
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    return folder


@pytest.fixture(scope="module")
def captioner(tiny_llava) -> LlavaCaptioner:
    settings = LlavaSettings(model=str(tiny_llava), max_new_tokens=12, device="cpu")
    return LlavaCaptioner(settings, load_template("person").instruction)


def real_crops(shared_data: Path) -> list[Image.Image]:
    paths = sorted((shared_data / "market1501-samples").glob("*.jpg"))
    assert len(paths) == 5
    return [Image.open(path).convert("RGB") for path in paths]


def noise_image(seed: int, size: tuple[int, int]) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3))
    return Image.fromarray(pixels.astype(np.uint8))


def test_tiny_llava_reloads_through_the_auto_classes(captioner):
    from transformers import LlavaForConditionalGeneration, LlavaProcessor

    assert isinstance(captioner.network, LlavaForConditionalGeneration)
    assert isinstance(captioner.processor, LlavaProcessor)
    assert captioner.processor.num_additional_image_tokens == 1
    assert captioner.processor.tokenizer.padding_side == "left"
    assert captioner.network.dtype == torch.float32
    assert sum(p.numel() for p in captioner.network.parameters()) < 1_000_000
    assert captioner.prompt.startswith("USER: <image>")
    assert captioner.prompt.endswith("ASSISTANT:")


def test_tokenizer_covers_the_template_words(captioner):
    tokenizer = captioner.processor.tokenizer
    template = load_template("person")
    rng = random.Random(1)
    texts = [template.instruction] + [
        render_caption(
            template,
            {name: rng.choice(list(spec.values)) for name, spec in template.fields.items()},
        )
        for _ in range(50)
    ]
    for text in texts:
        assert tokenizer.unk_token_id not in tokenizer(text)["input_ids"], text


def test_image_token_count_counts_the_cls_token(captioner):
    """With the CLS token counted (num_additional_image_tokens=1) prompt and features agree."""
    processor, model = captioner.processor, captioner.network
    image = noise_image(0, (32, 32))
    inputs = processor(images=[image], text=[captioner.prompt], return_tensors="pt")
    image_tokens = int((inputs["input_ids"] == model.config.image_token_index).sum())
    assert image_tokens == (32 // 8) ** 2 == model.config.image_seq_length
    with torch.inference_mode():
        model(**inputs)  # raises if the image-token count and the features disagree
    processor.num_additional_image_tokens = 0
    try:
        wrong = processor(images=[image], text=[captioner.prompt], return_tensors="pt")
        assert int((wrong["input_ids"] == model.config.image_token_index).sum()) == 15
        with pytest.raises(ValueError), torch.inference_mode():
            model(**wrong)
    finally:
        processor.num_additional_image_tokens = 1


def test_batched_answers_equal_one_at_a_time(captioner, shared_data):
    images = real_crops(shared_data) + [noise_image(seed, (64, 128)) for seed in range(3)]
    items = [CaptionItem(f"{index}.jpg", index, image) for index, image in enumerate(images)]
    batched = captioner.describe(items)
    one_by_one = [captioner.describe([item])[0] for item in items]
    assert batched == one_by_one
    assert len(set(batched)) > 1, "the images should give different answers"


def test_left_padding_keeps_answers_of_prompts_of_different_lengths(captioner):
    processor, model = captioner.processor, captioner.network
    short = captioner.prompt.replace(load_template("person").instruction, "Describe the person.")
    prompts = [captioner.prompt, short, short]
    images = [noise_image(seed, (32, 32)) for seed in (3, 4, 5)]
    inputs = processor(images=images, text=prompts, return_tensors="pt", padding=True)
    assert bool((inputs["attention_mask"][:, 0] == 0).any()), "the batch must be padded"
    batched = generate_answers(model, processor, images, prompts, max_new_tokens=12)
    singles = [
        generate_answers(model, processor, [image], [prompt], max_new_tokens=12)[0]
        for image, prompt in zip(images, prompts, strict=True)
    ]
    assert batched == singles


def _marked(crop: Image.Image) -> Image.Image:
    """The crop with its top (head) and bottom (feet) eighths painted pure red and pure blue."""
    pixels = np.asarray(crop).copy()
    band = pixels.shape[0] // 8
    pixels[:band] = (255, 0, 0)
    pixels[-band:] = (0, 0, 255)
    return Image.fromarray(pixels)


def _pixels(captioner: LlavaCaptioner, image: Image.Image) -> np.ndarray:
    processor = captioner.processor.image_processor
    values = processor(images=[image], return_tensors="pt")["pixel_values"][0]
    mean = torch.tensor(processor.image_mean).view(3, 1, 1)
    std = torch.tensor(processor.image_std).view(3, 1, 1)
    return ((values * std + mean) * 255).permute(1, 2, 0).numpy()


def _has_colour(pixels: np.ndarray, colour: tuple[int, int, int]) -> bool:
    return bool((np.abs(pixels - np.array(colour)).max(axis=-1) < 60).any())


def test_pad_to_square_keeps_head_and_feet_of_real_crops(captioner, shared_data):
    for crop in real_crops(shared_data):
        assert crop.height == 2 * crop.width
        marked = _marked(crop)
        padded = _pixels(captioner, pad_to_square(marked, captioner.fill))
        assert padded.shape[:2] == (32, 32)
        assert _has_colour(padded[:4], (255, 0, 0)), "head lost"
        assert _has_colour(padded[-4:], (0, 0, 255)), "feet lost"
        # The side bands are the processor's mean colour, not stretched person.
        assert np.abs(padded[:, :4] - np.array(captioner.fill)).max() < 8
        # llava-1.5's own centre crop cuts both off: this is why the captioner pads.
        cropped = _pixels(captioner, marked)
        assert not _has_colour(cropped, (255, 0, 0))
        assert not _has_colour(cropped, (0, 0, 255))


def test_grouping_by_size_keeps_the_order(captioner):
    captioner.group_by_size = True
    try:
        sizes = [(32, 64), (48, 48), (32, 64), (40, 60), (48, 48)]
        items = [
            CaptionItem(str(index), index, noise_image(10 + index, size))
            for index, size in enumerate(sizes)
        ]
        grouped = captioner.describe(items)
        assert grouped == [captioner.describe([item])[0] for item in items]
    finally:
        captioner.group_by_size = False


def test_missing_model_folder_and_bad_settings(tmp_path):
    with pytest.raises(ReIDError, match="model folder not found: .*nope"):
        LlavaCaptioner(LlavaSettings(model=str(tmp_path / "nope")), "Describe.")
    with pytest.raises(ReIDError, match="unknown dtype"):
        resolve_dtype("float8", torch.device("cpu"))
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    with pytest.raises(ReIDError, match="CUDA"):
        LlavaCaptioner(
            LlavaSettings(model=str(tmp_path), load_in_4bit=True, device="cpu"), "Describe."
        )


def test_builder_is_configurable_and_seeded(tmp_path):
    config = TinyLlavaConfig(image_size=48, patch_size=12, text_hidden_size=32, seed=3)
    first = build_tiny_llava(tmp_path / "first", config)
    second = build_tiny_llava(tmp_path / "second", config)
    assert (first / "model.safetensors").read_bytes() == (second / "model.safetensors").read_bytes()
    captioner = LlavaCaptioner(LlavaSettings(model=str(first), max_new_tokens=4), "Describe.")
    assert captioner.network.config.image_seq_length == 16
    assert captioner.network.config.text_config.hidden_size == 32
    assert len(captioner.describe([CaptionItem("a", 1, noise_image(0, (20, 40)))])) == 1
