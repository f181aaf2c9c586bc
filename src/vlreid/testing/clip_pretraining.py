"""The pretraining recipe of the built-in tiny CLIP (run by ``scripts/train_tiny_clip.py``).

An open_clip ``CLIP`` (a small ViT image tower built at the ReID crop size, e.g. 64x32, and a text
transformer with the real CLIP BPE vocabulary) learns, as CLIP did, to match images with their
descriptions, at toy scale: procedural pedestrians rendered by the public renderer, each paired at
every step with a freshly drawn sentence about its attributes (:func:`describe`: several
templates, synonyms, random clause order, partial descriptions, and the caption template's
canonical sentence).

Attribute sentences repeat across people (a few thousand identities share far fewer attribute
combinations), and a partial description fits every image that agrees on the fields it names. So
the loss is CLIP's symmetric contrastive loss with *multi-positive* targets
(:func:`multi_positive_clip_loss`): a text's targets are all images of the batch consistent with
it, an image's targets all texts consistent with it. Plain one-positive InfoNCE would push true
matches apart.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import open_clip
import torch

from vlreid.attributes import PERSON_FIELDS
from vlreid.datasets.transforms import Preprocessing, ReIDTransform, TrainTransform
from vlreid.synthetic import PedestrianRenderer, make_cameras, sample_person
from vlreid.templates import Template, render_caption

logger = logging.getLogger(__name__)

FIELDS: tuple[str, ...] = tuple(PERSON_FIELDS)

GENDER_NOUNS = {
    "male": ("man", "male pedestrian", "guy"),
    "female": ("woman", "female pedestrian", "lady"),
}
AGE_WORDS = {
    "young": ("young", "teenage"),
    "adult": ("adult", "middle-aged"),
    "old": ("old", "elderly"),
}
COLOR_WORDS = {"gray": ("gray", "grey"), "purple": ("purple", "violet")}
UPPER_WORDS = {
    "t-shirt": ("t-shirt", "tee", "short-sleeved shirt"),
    "sweater": ("sweater", "jumper", "pullover"),
    "coat": ("coat", "jacket", "long coat"),
}
LOWER_WORDS = {
    "trousers": ("trousers", "pants", "long pants"),
    "shorts": ("shorts", "short pants"),
    "skirt": ("skirt",),
}
SHOE_WORDS = ("shoes", "sneakers", "footwear")
BAG_CLAUSES = {
    "none": ("carrying no bag", "with nothing in hand", "without a bag"),
    "backpack": ("carrying a backpack", "with a rucksack", "wearing a backpack"),
    "handbag": ("carrying a handbag", "holding a purse", "with a handbag"),
    "shoulder bag": (
        "carrying a shoulder bag",
        "with a messenger bag",
        "with a bag on the shoulder",
    ),
}
OPENINGS = (
    "A photo of {}",
    "{}",
    "An image of {}",
    "This is {}",
    "A pedestrian: {}",
    "There is {}",
)


@dataclass(frozen=True)
class PairSet:
    """Rendered training images and their attributes.

    Attributes:
        images: ``(N, 3, H, W)`` uint8, already at the model's input size.
        attributes: ``(N, F)`` int64, the index of each field's value in ``PERSON_FIELDS``.
        identities: ``(N,)`` int64 identity of each image.
    """

    images: torch.Tensor
    attributes: torch.Tensor
    identities: torch.Tensor


@dataclass(frozen=True)
class Schedule:
    """Optimisation settings (linear warm-up, then cosine decay to ``min_lr_factor``).

    Attributes:
        steps: Optimizer steps.
        lr: Peak learning rate.
        batch_size: Image-text pairs per step.
        warmup: Warm-up steps.
        weight_decay: AdamW weight decay (not on gains, biases, embeddings, logit scale).
        min_lr_factor: Final learning rate as a fraction of ``lr``.
        seed: Seed of the batch order, the sentences and the augmentation.
        log_every: Log the loss every N steps.
    """

    steps: int
    lr: float
    batch_size: int = 256
    warmup: int = 100
    weight_decay: float = 0.1
    min_lr_factor: float = 0.05
    seed: int = 0
    log_every: int = 100


def render_pairs(
    identities: int,
    views: int,
    camera_sets: int,
    first_camera_seed: int,
    seed: int,
    image_size: tuple[int, int],
) -> PairSet:
    """Render ``identities`` x ``views`` images of fresh people, resized to ``image_size``.

    Identity ``i`` lives in a network of 9 cameras (``make_cameras(9, first_camera_seed + i %
    camera_sets)``); each view takes a random camera of it, with the viewpoint and occlusion the
    renderer draws. Images are resized as the ReID evaluation transform resizes them (bicubic).
    """
    rng = np.random.default_rng([seed, 12])
    renderer, resize = PedestrianRenderer(), ReIDTransform(Preprocessing.clip(image_size)).resize
    networks = [make_cameras(9, seed=first_camera_seed + index) for index in range(camera_sets)]
    images, attributes, owners = [], [], []
    for index in range(identities):
        person = sample_person(rng)
        values = [PERSON_FIELDS[name].index(getattr(person, name)) for name in FIELDS]
        cameras = networks[index % camera_sets]
        for _ in range(views):
            camera = cameras[int(rng.integers(len(cameras)))]
            images.append(resize(renderer.render_image(person, camera, rng)))
            attributes.append(values)
            owners.append(index)
    return PairSet(torch.stack(images), torch.tensor(attributes), torch.tensor(owners))


def _color(value: str, rng: random.Random) -> str:
    return rng.choice(COLOR_WORDS.get(value, (value,)))


def describe(
    values: dict[str, str], rng: random.Random, template: Template, partial: float = 0.5
) -> tuple[str, frozenset[str]]:
    """One random sentence about a person, and the fields it names.

    With probability ``partial`` the sentence names a random subset of the fields (at least
    two); otherwise all of them. One sentence in five is the caption template's canonical one
    (:func:`vlreid.templates.render_caption`), the form the ``attributes`` captioner writes.

    Args:
        values: Field -> value, as in ``PERSON_FIELDS``.
        rng: Source of every choice.
        template: The person caption template.
        partial: Probability of a partial description.
    """
    if rng.random() < 0.2:
        return render_caption(template, values), frozenset(FIELDS)
    named = set(FIELDS)
    if rng.random() < partial:
        named = set(rng.sample(FIELDS, rng.randint(2, len(FIELDS) - 1)))
    noun = rng.choice(GENDER_NOUNS[values["gender"]]) if "gender" in named else "person"
    if "age" in named:
        noun = f"{rng.choice(AGE_WORDS[values['age']])} {noun}"
    hair = f"{values['hair']} hair"
    clauses: list[str] = []
    if "hair" in named:
        clauses.append(rng.choice((f"with {hair}", f"who has {hair}")))
    garments = []
    for field, words in (("upper", UPPER_WORDS), ("lower", LOWER_WORDS)):
        kind, color = f"{field}_type" in named, f"{field}_color" in named
        word = rng.choice(words[values[f"{field}_type"]]) if kind else ""
        shade = _color(values[f"{field}_color"], rng) if color else ""
        if kind or color:
            garment = f"{shade} {word or ('top' if field == 'upper' else 'bottoms')}".strip()
            garments.append(garment)
    if "shoes" in named:
        garments.append(f"{_color(values['shoes'], rng)} {rng.choice(SHOE_WORDS)}")
    if garments:
        listed = (
            garments[0] if len(garments) == 1 else ", ".join(garments[:-1]) + " and " + garments[-1]
        )
        clauses.append(f"{rng.choice(('wearing', 'dressed in', 'in'))} {listed}")
    if "bag" in named:
        clauses.append(rng.choice(BAG_CLAUSES[values["bag"]]))
    rng.shuffle(clauses)
    article = "an" if noun[0] in "aeiou" else "a"
    sentence = rng.choice(OPENINGS).format(f"{article} {noun}")
    sentence = sentence[0].upper() + sentence[1:]
    if clauses:
        sentence += " " + ", ".join(clauses)
    return sentence + ".", frozenset(named)


def consistency(attributes: torch.Tensor, named: torch.Tensor) -> torch.Tensor:
    """Which images fit which texts: ``(B_text, B_image)`` bool.

    Args:
        attributes: ``(B, F)`` value indices of the batch's images (text ``t`` describes image
            ``t``).
        named: ``(B, F)`` bool, the fields that text ``t`` names.
    """
    agree = attributes[:, None, :] == attributes[None, :, :]  # (B_text, B_image, F)
    return (agree | ~named[:, None, :]).all(dim=-1)


def multi_positive_clip_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    positives: torch.Tensor,
) -> torch.Tensor:
    """CLIP's symmetric contrastive loss with every consistent pair a positive.

    Implements Eq. (1) of Radford et al. (2021), the mean of image->text and text->image
    cross-entropies, with the one-hot targets replaced by ``positives`` normalised per row (as
    in supervised contrastive learning, Khosla et al. 2020).

    Args:
        image_features: ``(B, E)`` L2-normalised.
        text_features: ``(B, E)`` L2-normalised.
        logit_scale: Scalar, the log of the temperature's inverse.
        positives: ``(B_text, B_image)`` bool with a true diagonal.
    """
    logits = logit_scale.exp() * text_features @ image_features.T  # (B_text, B_image)
    targets = positives.float()
    text_to_image = -(targets / targets.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1)
    image_to_text = -(targets / targets.sum(0, keepdim=True) * logits.log_softmax(0)).sum(0)
    return 0.5 * (text_to_image.mean() + image_to_text.mean())


def learning_rate(step: int, schedule: Schedule) -> float:
    """Linear warm-up to ``schedule.lr``, then cosine decay to ``min_lr_factor`` of it."""
    if step < schedule.warmup:
        return schedule.lr * (step + 1) / schedule.warmup
    progress = (step - schedule.warmup) / max(1, schedule.steps - schedule.warmup)
    floor = schedule.min_lr_factor
    return schedule.lr * (floor + (1 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress)))


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on matrices only (not gains, biases, embeddings, the logit scale)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        exempt = parameter.ndim < 2 or "embedding" in name or "logit_scale" in name
        (no_decay if exempt else decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0},
    ]


def pretrain(
    model: open_clip.CLIP,
    pairs: PairSet,
    schedule: Schedule,
    template: Template,
    preprocessing: Preprocessing,
    evaluate: Callable[[], dict[str, float]] | None = None,
    evaluate_every: int = 500,
) -> list[dict[str, float]]:
    """Train ``model`` in place with :func:`multi_positive_clip_loss`.

    Every step draws ``batch_size`` images (epoch-shuffled), augments them (flip, 3-pixel pad and
    crop) and pairs each with a fresh :func:`describe` sentence.

    Returns:
        The learning curve: step, loss, logit scale and what ``evaluate`` returned, per call.
    """
    augment = TrainTransform(preprocessing, padding=3, erasing_probability=0.0).augment
    generator = torch.Generator().manual_seed(schedule.seed)
    sentences = random.Random(schedule.seed)
    optimizer = torch.optim.AdamW(parameter_groups(model, schedule.weight_decay), lr=schedule.lr)
    order, cursor = torch.randperm(len(pairs.images), generator=generator), 0
    curve: list[dict[str, float]] = []
    started, total = time.perf_counter(), 0.0
    for step in range(schedule.steps):
        if cursor + schedule.batch_size > len(order):
            order, cursor = torch.randperm(len(pairs.images), generator=generator), 0
        indices = order[cursor : cursor + schedule.batch_size]
        cursor += schedule.batch_size
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, schedule)
        images = torch.stack([augment(pairs.images[i], generator) for i in indices.tolist()])
        attributes = pairs.attributes[indices]
        texts, named = [], []
        for row in attributes.tolist():
            values = {f: PERSON_FIELDS[f][v] for f, v in zip(FIELDS, row, strict=True)}
            sentence, fields = describe(values, sentences, template)
            texts.append(sentence)
            named.append([f in fields for f in FIELDS])
        tokens = open_clip.tokenize(texts, context_length=model.context_length)
        model.train()
        image_features = model.encode_image(images, normalize=True)
        text_features = model.encode_text(tokens, normalize=True)
        positives = consistency(attributes, torch.tensor(named))
        loss = multi_positive_clip_loss(image_features, text_features, model.logit_scale, positives)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        total += loss.item()
        if (step + 1) % schedule.log_every == 0:
            logger.info(
                "step %d/%d  loss %.4f  scale %.1f  %.0f s",
                *(step + 1, schedule.steps, total / schedule.log_every),
                *(model.logit_scale.exp().item(), time.perf_counter() - started),
            )
            total = 0.0
        if evaluate is not None and (
            (step + 1) % evaluate_every == 0 or step + 1 == schedule.steps
        ):
            model.eval()
            point = {"step": step + 1, "loss": round(loss.item(), 4)}
            curve.append({**point, "seconds": round(time.perf_counter() - started), **evaluate()})
            logger.info("evaluation %s", curve[-1])
    model.eval()
    return curve
