"""The tiny CLIP's pretraining recipe: sentences, multi-positive targets, the contrastive loss."""

from __future__ import annotations

import random

import open_clip
import torch
import torch.nn.functional as F

from vlreid.attributes import PERSON_FIELDS
from vlreid.datasets.transforms import Preprocessing, ReIDTransform
from vlreid.templates import load_template, render_caption
from vlreid.testing.clip_pretraining import (
    FIELDS,
    Schedule,
    consistency,
    describe,
    multi_positive_clip_loss,
    pretrain,
    render_pairs,
)

PERSON = {
    "gender": "female",
    "age": "old",
    "hair": "long",
    "upper_type": "coat",
    "upper_color": "gray",
    "lower_type": "skirt",
    "lower_color": "pink",
    "shoes": "brown",
    "bag": "backpack",
}


def test_describe_names_only_true_values_and_fits_the_context() -> None:
    template, rng = load_template("person"), random.Random(0)
    sentences = set()
    for _ in range(300):
        sentence, named = describe(PERSON, rng, template)
        sentences.add(sentence)
        assert len(named) >= 2
        assert (open_clip.tokenize([sentence], context_length=77)[0] != 0).sum() <= 40
        assert "skirt" in sentence if "lower_type" in named else "skirt" not in sentence
        assert "pink" in sentence if "lower_color" in named else "pink" not in sentence
        if "gender" not in named:
            assert not any(word in sentence for word in ("woman", "lady", "female"))
    assert len(sentences) > 100  # many phrasings, not a handful


def test_consistency_matches_a_naive_loop() -> None:
    generator = torch.Generator().manual_seed(0)
    attributes = torch.randint(0, 2, (12, len(FIELDS)), generator=generator)
    named = torch.rand(12, len(FIELDS), generator=generator) < 0.5
    expected = torch.zeros(12, 12, dtype=torch.bool)
    for text in range(12):
        for image in range(12):
            expected[text, image] = all(
                not named[text, f] or attributes[text, f] == attributes[image, f]
                for f in range(len(FIELDS))
            )
    assert torch.equal(consistency(attributes, named), expected)
    assert consistency(attributes, named).diagonal().all()


def test_one_positive_targets_give_clips_loss() -> None:
    generator = torch.Generator().manual_seed(1)
    images = F.normalize(torch.randn(8, 16, generator=generator), dim=1)
    texts = F.normalize(torch.randn(8, 16, generator=generator), dim=1)
    scale = torch.tensor(2.0)
    logits = scale.exp() * images @ texts.T
    labels = torch.arange(8)
    reference = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    loss = multi_positive_clip_loss(images, texts, scale, torch.eye(8, dtype=torch.bool))
    torch.testing.assert_close(loss, reference)


def test_a_true_match_is_not_a_negative() -> None:
    """Two images with the same attributes: each text fits both, so the loss is lowest when
    both images score alike (plain InfoNCE would push one of them away)."""
    texts = F.normalize(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), dim=1)
    positives = torch.ones(2, 2, dtype=torch.bool)
    same = multi_positive_clip_loss(texts.clone(), texts, torch.tensor(2.0), positives)
    apart = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    different = multi_positive_clip_loss(apart, texts, torch.tensor(2.0), positives)
    assert same < different


def test_pretraining_lowers_the_loss_of_a_tiny_clip() -> None:
    config = {
        "embed_dim": 16,
        "quick_gelu": True,
        "vision_cfg": {
            "image_size": [32, 16],
            "layers": 1,
            "width": 32,
            "head_width": 32,
            "patch_size": 8,
        },
        "text_cfg": {"context_length": 40, "vocab_size": 49408, "width": 32, "heads": 1},
    }
    torch.manual_seed(0)
    model = open_clip.CLIP(**config)
    pairs = render_pairs(8, 2, 2, 3_000_000, 0, (32, 16))
    assert pairs.images.shape == (16, 3, 32, 16) and pairs.images.dtype == torch.uint8
    assert pairs.attributes.shape == (16, len(PERSON_FIELDS))
    schedule = Schedule(steps=40, lr=3e-3, batch_size=16, warmup=2, log_every=10)
    template, preprocessing = load_template("person"), Preprocessing.clip((32, 16))
    canonical = [
        render_caption(template, {f: PERSON_FIELDS[f][v] for f, v in zip(FIELDS, row, strict=True)})
        for row in pairs.attributes.tolist()
    ]
    tokens = open_clip.tokenize(canonical, context_length=40)
    images = torch.stack([ReIDTransform(preprocessing).normalize(p) for p in pairs.images])
    positives = consistency(pairs.attributes, torch.ones_like(pairs.attributes, dtype=torch.bool))

    @torch.no_grad()
    def fixed_loss() -> dict[str, float]:
        image_features = model.encode_image(images, normalize=True)
        text_features = model.encode_text(tokens, normalize=True)
        loss = multi_positive_clip_loss(image_features, text_features, model.logit_scale, positives)
        return {"fixed": loss.item()}

    before = fixed_loss()["fixed"]
    curve = pretrain(model, pairs, schedule, template, preprocessing, fixed_loss, 20)
    assert [point["step"] for point in curve] == [20, 40]
    assert curve[-1]["fixed"] < 0.9 * before  # 3.17 -> 2.77 when written
