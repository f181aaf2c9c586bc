"""Every loss against a naive per-sample Python loop kept here."""

from __future__ import annotations

import math

import pytest
import torch

from vlreid.training.losses import (
    identity_loss,
    image_to_text_loss,
    nt_xent_loss,
    supervised_contrastive_loss,
    triplet_loss,
)

torch.set_num_threads(1)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def naive_label_smoothed_ce(logits: torch.Tensor, labels: torch.Tensor, epsilon: float) -> float:
    num_classes = logits.shape[1]
    total = 0.0
    for row, label in zip(logits.tolist(), labels.tolist(), strict=True):
        log_normaliser = math.log(sum(math.exp(value) for value in row))
        for k, value in enumerate(row):
            target = (1 - epsilon) * (k == label) + epsilon / num_classes
            total -= target * (value - log_normaliser)
    return total / len(logits)


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.3])
def test_identity_loss_matches_loop(epsilon: float) -> None:
    logits = torch.randn(6, 5, generator=_generator(), dtype=torch.float64)
    labels = torch.tensor([0, 4, 2, 2, 1, 3])
    expected = naive_label_smoothed_ce(logits, labels, epsilon)
    assert identity_loss(logits, labels, epsilon).item() == pytest.approx(expected, rel=1e-5)


def naive_triplet(features: list, labels: list, margin: float | None) -> float:
    total = 0.0
    for i in range(len(features)):
        positives, negatives = [], []
        for j in range(len(features)):
            difference = [a - b for a, b in zip(features[i], features[j], strict=True)]
            distance = math.sqrt(dot(difference, difference))
            (positives if labels[i] == labels[j] else negatives).append(distance)
        if not negatives:
            continue
        difference = max(positives) - min(negatives)
        total += (
            math.log1p(math.exp(difference)) if margin is None else max(0.0, difference + margin)
        )
    return total / len(features)


@pytest.mark.parametrize("margin", [0.3, 1.0, None])
def test_triplet_loss_matches_loop(margin: float | None) -> None:
    features = torch.randn(9, 4, generator=_generator(1), dtype=torch.float64)
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2])  # unequal identity sizes
    expected = naive_triplet(features.tolist(), labels.tolist(), margin)
    assert triplet_loss(features, labels, margin).item() == pytest.approx(expected, abs=1e-5)


def test_triplet_loss_normalize_and_single_identity() -> None:
    features = torch.randn(6, 3, generator=_generator(2), dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    unit = (features / features.norm(dim=1, keepdim=True)).tolist()
    assert triplet_loss(features, labels, 0.3, normalize=True).item() == pytest.approx(
        naive_triplet(unit, labels.tolist(), 0.3), abs=1e-5
    )
    same = features.clone().requires_grad_(True)
    loss = triplet_loss(same, torch.zeros(6, dtype=torch.int64))  # no negatives at all
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(same.grad).all()


def naive_supcon(queries, keys, query_labels, key_labels, temperature) -> float:
    total = 0.0
    for query, query_label in zip(queries, query_labels, strict=True):
        logits = [dot(query, key) / temperature for key in keys]
        log_normaliser = math.log(sum(math.exp(value) for value in logits))
        positives = [
            logit - log_normaliser
            for logit, key_label in zip(logits, key_labels, strict=True)
            if key_label == query_label
        ]
        total -= sum(positives) / len(positives)
    return total / len(queries)


@pytest.mark.parametrize("temperature", [1.0, 0.07])
def test_supervised_contrastive_matches_loop(temperature: float) -> None:
    queries = torch.randn(5, 4, generator=_generator(3), dtype=torch.float64)
    keys = torch.randn(7, 4, generator=_generator(4), dtype=torch.float64)
    query_labels = torch.tensor([0, 1, 1, 2, 0])
    key_labels = torch.tensor([2, 0, 1, 1, 0, 2, 3])
    expected = naive_supcon(
        queries.tolist(), keys.tolist(), query_labels.tolist(), key_labels.tolist(), temperature
    )
    loss = supervised_contrastive_loss(queries, keys, query_labels, key_labels, temperature)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def naive_nt_xent(view_a, view_b, temperature) -> float:
    def unit(vector):
        norm = math.sqrt(sum(v * v for v in vector))
        return [v / norm for v in vector]

    views = ([unit(v) for v in view_a], [unit(v) for v in view_b])
    total, count = 0.0, 0
    for side in (0, 1):
        anchors, others = views[side], views[1 - side]
        for i, anchor in enumerate(anchors):
            candidates = list(others) + [a for j, a in enumerate(anchors) if j != i]
            scores = [dot(anchor, c) / temperature for c in candidates]
            total -= scores[i] - math.log(sum(math.exp(s) for s in scores))
            count += 1
    return total / count


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_nt_xent_matches_loop(temperature: float) -> None:
    view_a = torch.randn(6, 5, generator=_generator(5), dtype=torch.float64)
    view_b = view_a + 0.3 * torch.randn(6, 5, generator=_generator(6), dtype=torch.float64)
    expected = naive_nt_xent(view_a.tolist(), view_b.tolist(), temperature)
    assert nt_xent_loss(view_a, view_b, temperature).item() == pytest.approx(expected, rel=1e-6)


def test_image_to_text_matches_loop() -> None:
    images = torch.randn(6, 4, generator=_generator(7), dtype=torch.float64)
    texts = torch.randn(3, 4, generator=_generator(8), dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    logits = torch.tensor(
        [[dot(image, text) for text in texts.tolist()] for image in images.tolist()]
    )
    expected = naive_label_smoothed_ce(logits, labels, 0.1)
    assert image_to_text_loss(images, texts, labels).item() == pytest.approx(expected, rel=1e-5)
