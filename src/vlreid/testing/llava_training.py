"""The training recipe of the built-in tiny LLaVA (run by ``scripts/train_tiny_llava.py``).

A LLaVA built by :func:`vlreid.testing.llava.build_tiny_llava` learns to answer the person
template's instruction about procedural pedestrians in three stages, each budgeted in steps:

1. :func:`pretrain_vision`: the CLIP vision tower alone, with one linear classifier per field on
   its flattened patch tokens (thrown away afterwards). A from-scratch ViT learns colours and
   shapes several times faster this way than through the language model, at a fifth of the cost.
2. :func:`train_answers` with a short prompt (``USER: <image>\\n ASSISTANT:``) and the vision
   tower frozen: the language model learns to read the image tokens. Behind the 110-token
   instruction an untrained language model never finds them.
3. :func:`train_answers` with the template's instruction, every weight trained.

Every image goes through the captioner's preprocessing (pad to square with the processor's mean
colour, then the processor) and targets are the template's canonical captions plus ``</s>``, with
cross-entropy on the answer tokens only (teacher forcing).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from vlreid.attributes import PERSON_FIELDS
from vlreid.captioning.llava import generate_answers, pad_to_square, padding_fill
from vlreid.synthetic.camera import make_cameras
from vlreid.synthetic.person import sample_person
from vlreid.synthetic.renderer import PedestrianRenderer
from vlreid.templates import Template, parse_answer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """One rendered image and its true attributes (field -> value)."""

    image: Image.Image
    attributes: dict[str, str]


@dataclass(frozen=True)
class Stage:
    """Optimisation settings of one training stage.

    Attributes:
        steps: Optimizer steps.
        lr: Peak learning rate (linear warm-up, then cosine decay to a tenth).
        batch_size: Images per step.
        warmup: Warm-up steps.
        weight_decay: AdamW weight decay.
        seed: Seed of the batch order.
        log_every: Log the loss every N steps.
    """

    steps: int
    lr: float
    batch_size: int = 16
    warmup: int = 50
    weight_decay: float = 0.01
    seed: int = 0
    log_every: int = 100


def render_samples(
    identities: int, views: int, camera_sets: int, first_camera_seed: int, seed: int
) -> list[Sample]:
    """Render ``identities`` x ``views`` images of fresh people in ``camera_sets`` networks.

    Identity ``i`` lives in a network of 9 cameras (``make_cameras(9, first_camera_seed + i %
    camera_sets)``); each view takes a random camera of it, viewpoint and occlusion as drawn by
    the renderer.
    """
    rng = np.random.default_rng([seed, 6])
    renderer = PedestrianRenderer()
    networks = [make_cameras(9, seed=first_camera_seed + index) for index in range(camera_sets)]
    samples = []
    for index in range(identities):
        person = sample_person(rng)
        attributes = {name: getattr(person, name) for name in PERSON_FIELDS}
        cameras = networks[index % camera_sets]
        for _ in range(views):
            camera = cameras[int(rng.integers(len(cameras)))]
            samples.append(Sample(renderer.render_image(person, camera, rng), attributes))
    return samples


def pixel_values(processor: Any, images: list[Image.Image]) -> torch.Tensor:
    """Pad to square (mean colour), then the processor, as the captioner does: ``(B, 3, S, S)``."""
    fill = padding_fill(processor)
    squares = [pad_to_square(image, fill) for image in images]
    return processor.image_processor(squares, return_tensors="pt")["pixel_values"]


def encode_answers(tokenizer: Any, captions: list[str]) -> list[list[int]]:
    """Token ids of each caption followed by the end-of-sequence token (the targets).

    Raises:
        ValueError: A caption has a word the tokenizer does not know.
    """
    encoded = tokenizer(captions, add_special_tokens=False)["input_ids"]
    for caption, ids in zip(captions, encoded, strict=True):
        if tokenizer.unk_token_id in ids:
            raise ValueError(f"the tokenizer does not cover every word of {caption!r}")
    return [ids + [tokenizer.eos_token_id] for ids in encoded]


def make_batch(
    prompt_ids: torch.Tensor, answers: list[list[int]], pad_id: int
) -> dict[str, torch.Tensor]:
    """Prompt + answer, right-padded; labels ``-100`` except on answer tokens. ``(B, L)`` each."""
    longest = max(len(answer) for answer in answers)
    batch_size, prompt_length = len(answers), prompt_ids.shape[0]
    input_ids = torch.full((batch_size, prompt_length + longest), pad_id, dtype=torch.long)
    labels = torch.full_like(input_ids, -100)
    attention_mask = torch.zeros_like(input_ids)
    input_ids[:, :prompt_length] = prompt_ids
    attention_mask[:, :prompt_length] = 1
    for row, answer in enumerate(answers):
        end = prompt_length + len(answer)
        input_ids[row, prompt_length:end] = torch.tensor(answer)
        labels[row, prompt_length:end] = torch.tensor(answer)
        attention_mask[row, prompt_length:end] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def sincos_positions(grid: int, dim: int, scale: float = 1.0) -> torch.Tensor:
    """2D sine-cosine position embeddings of a ``grid`` x ``grid`` patch grid: ``(grid**2, dim)``.

    Half of the channels encode the row, half the column, at geometric frequencies (as in MAE).
    """
    quarter = dim // 4
    steps = torch.arange(grid, dtype=torch.float32)
    rows, columns = torch.meshgrid(steps, steps, indexing="ij")
    frequencies = 1.0 / (100.0 ** (torch.arange(quarter, dtype=torch.float32) / quarter))

    def encode(positions: torch.Tensor) -> torch.Tensor:
        angles = positions.flatten()[:, None] * frequencies[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return scale * torch.cat([encode(rows), encode(columns)], dim=1)


def learning_rate(step: int, stage: Stage) -> float:
    """Linear warm-up to ``stage.lr``, then cosine decay to a tenth of it."""
    if step < stage.warmup:
        return stage.lr * (step + 1) / stage.warmup
    progress = (step - stage.warmup) / max(1, stage.steps - stage.warmup)
    return stage.lr * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


class Batches:
    """Seeded, epoch-shuffled batches of sample indices."""

    def __init__(self, size: int, batch_size: int, seed: int) -> None:
        self.size, self.batch_size = size, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.order, self.cursor = torch.randperm(size, generator=self.generator), 0

    def next(self) -> list[int]:
        """The next batch; a new permutation when the epoch ends."""
        if self.cursor + self.batch_size > self.size:
            self.order, self.cursor = torch.randperm(self.size, generator=self.generator), 0
        indices = self.order[self.cursor : self.cursor + self.batch_size].tolist()
        self.cursor += self.batch_size
        return indices


class AttributeHeads(nn.Module):
    """Stage-1 classifiers: one linear layer per field on the flattened patch tokens, plus
    (weighted by ``mean_weight``) one on their mean.

    The flattened heads teach the tower what to see quickly; the mean heads make every field
    readable from a broad average of the tokens, which is how an untrained language model first
    looks at an image.

    Args:
        tokens: Patch tokens per image (T).
        hidden_size: Width of the vision tower (D).
        mean_weight: Weight of the mean-token heads' loss (0: none).
    """

    def __init__(self, tokens: int, hidden_size: int, mean_weight: float = 0.0) -> None:
        super().__init__()
        self.mean_weight = mean_weight
        self.heads = nn.ModuleDict(
            {
                name: nn.Linear(tokens * hidden_size, len(values))
                for name, values in PERSON_FIELDS.items()
            }
        )
        self.mean_heads = nn.ModuleDict(
            {name: nn.Linear(hidden_size, len(values)) for name, values in PERSON_FIELDS.items()}
        )

    def forward(self, patch_tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over fields; ``patch_tokens`` ``(B, T, D)``, ``labels`` ``(B, F)``."""
        flat, mean = patch_tokens.flatten(1), patch_tokens.mean(dim=1)
        losses = []
        for column, name in enumerate(PERSON_FIELDS):
            loss = nn.functional.cross_entropy(self.heads[name](flat), labels[:, column])
            if self.mean_weight > 0:
                mean_logits = self.mean_heads[name](mean)
                loss = loss + self.mean_weight * nn.functional.cross_entropy(
                    mean_logits, labels[:, column]
                )
            losses.append(loss)
        return torch.stack(losses).mean()


def pretrain_vision(
    model: Any, processor: Any, samples: list[Sample], stage: Stage, mean_weight: float = 0.0
) -> None:
    """Stage 1: train the vision tower with per-field classifiers (:class:`AttributeHeads`)."""
    tower = model.model.vision_tower
    tokens, hidden_size = tower.embeddings.num_patches, tower.config.hidden_size
    heads = AttributeHeads(tokens, hidden_size, mean_weight)
    labels = torch.tensor(
        [[values.index(s.attributes[k]) for k, values in PERSON_FIELDS.items()] for s in samples]
    )
    parameters = [*tower.parameters(), *heads.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=stage.lr, weight_decay=stage.weight_decay)
    batches, started = Batches(len(samples), stage.batch_size, stage.seed), time.perf_counter()
    tower.train()
    for step in range(stage.steps):
        indices = batches.next()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, stage)
        pixels = pixel_values(processor, [samples[i].image for i in indices])
        patch_tokens = tower(pixels).last_hidden_state[:, 1:]  # what LLaVA reads (CLS dropped)
        loss = heads(patch_tokens, labels[indices])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % stage.log_every == 0:
            elapsed = time.perf_counter() - started
            logger.info(
                "vision %d/%d  loss %.4f  %.0f s", step + 1, stage.steps, loss.item(), elapsed
            )


def train_answers(
    model: Any,
    processor: Any,
    samples: list[Sample],
    answers: list[list[int]],
    prompt: str,
    stage: Stage,
    vision_lr_scale: float,
    evaluate: Callable[[], dict[str, float]] | None = None,
    evaluate_every: int = 500,
) -> list[dict[str, float]]:
    """Stages 2 and 3: teacher forcing, cross-entropy on the answer tokens only.

    Args:
        model: The LLaVA (trained in place).
        processor: Its processor.
        samples: Training images; ``answers[i]`` is the target of ``samples[i]``.
        answers: Target token ids (see :func:`encode_answers`).
        prompt: The prompt in the model's chat form, with one image placeholder.
        stage: Steps and optimisation settings.
        vision_lr_scale: Learning-rate factor of the vision tower; 0 freezes it.
        evaluate: Called (model in eval mode) every ``evaluate_every`` steps and at the end.
        evaluate_every: Steps between two calls of ``evaluate``.

    Returns:
        The learning curve: step, loss and what ``evaluate`` returned, per call.
    """
    prompt_ids = processor(images=[samples[0].image], text=[prompt], return_tensors="pt")
    prompt_ids = prompt_ids["input_ids"][0]
    tower = model.model.vision_tower
    tower.requires_grad_(vision_lr_scale > 0)
    others = [
        p for name, p in model.named_parameters() if not name.startswith("model.vision_tower")
    ]
    groups = [{"params": others, "scale": 1.0}]
    if vision_lr_scale > 0:
        groups.append({"params": list(tower.parameters()), "scale": vision_lr_scale})
    optimizer = torch.optim.AdamW(groups, lr=stage.lr, weight_decay=stage.weight_decay)
    batches, started = Batches(len(samples), stage.batch_size, stage.seed), time.perf_counter()
    curve: list[dict[str, float]] = []
    for step in range(stage.steps):
        indices = batches.next()
        for group in optimizer.param_groups:
            group["lr"] = group["scale"] * learning_rate(step, stage)
        pad_id = processor.tokenizer.pad_token_id
        batch = make_batch(prompt_ids, [answers[i] for i in indices], pad_id)
        model.train()
        pixels = pixel_values(processor, [samples[i].image for i in indices])
        loss = model(pixel_values=pixels, **batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if (step + 1) % stage.log_every == 0:
            elapsed = time.perf_counter() - started
            logger.info(
                "answers %d/%d (prompt %d tokens)  loss %.4f  %.0f s",
                *(step + 1, stage.steps, prompt_ids.shape[0], loss.item(), elapsed),
            )
        if evaluate is not None and ((step + 1) % evaluate_every == 0 or step + 1 == stage.steps):
            model.eval()
            curve.append({"step": step + 1, "loss": round(loss.item(), 4), **evaluate()})
    tower.requires_grad_(True)
    model.eval()
    return curve


def field_accuracy(
    answers: list[str], samples: list[Sample], template: Template
) -> dict[str, float]:
    """Share of images whose parsed field equals the truth, per field, plus ``mean``."""
    correct = dict.fromkeys(PERSON_FIELDS, 0)
    for answer, sample in zip(answers, samples, strict=True):
        parsed = parse_answer(answer, template).attributes
        for name in PERSON_FIELDS:
            correct[name] += parsed.get(name) == sample.attributes[name]
    accuracy = {name: round(count / len(answers), 4) for name, count in correct.items()}
    accuracy["mean"] = round(sum(correct.values()) / (len(answers) * len(PERSON_FIELDS)), 4)
    return accuracy


@torch.inference_mode()
def answer_accuracy(
    model: Any, processor: Any, prompt: str, samples: list[Sample], template: Template
) -> dict[str, float]:
    """Field accuracy of an in-memory model through the captioner's generation function."""
    fill = padding_fill(processor)
    answers: list[str] = []
    for start in range(0, len(samples), 32):
        images = [pad_to_square(sample.image, fill) for sample in samples[start : start + 32]]
        answers += generate_answers(model, processor, images, [prompt] * len(images), 48)
    accuracy = field_accuracy(answers, samples, template)
    logger.info("held-out accuracy  %s", "  ".join(f"{k} {v:.3f}" for k, v in accuracy.items()))
    return accuracy
