"""Losses of the ReID methods, vectorised; each has a parity test against a naive loop.

All functions return a scalar tensor (mean over the batch unless said otherwise). They follow the
reference implementations the papers used (CLIP-ReID's ``loss/`` and SVLL-ReID's SimCLR loss), so
that hyper-parameters carry over unchanged:

- :func:`identity_loss`: cross-entropy with label smoothing (Szegedy et al. 2016), epsilon 0.1.
- :func:`triplet_loss`: batch-hard triplet (Hermans et al. 2017) on Euclidean distances, margin
  0.3; ``margin=None`` is the soft-margin variant (CLIP-ReID's ``NO_MARGIN`` option, off by
  default in its configs).
- :func:`supervised_contrastive_loss`: CLIP-ReID's stage-1 SupCon between two modalities, with
  every same-identity pair a positive (temperature 1, unnormalised features, as the reference).
- :func:`nt_xent_loss`: SimCLR's NT-Xent in SLIP's two-view form (SVLL-ReID), temperature 0.1.
- :func:`image_to_text_loss`: CLIP-ReID's stage-2 image-to-text cross-entropy over identity
  text features (label-smoothed, unnormalised dot products, as the reference).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LABEL_SMOOTHING = 0.1
TRIPLET_MARGIN = 0.3
SIMCLR_TEMPERATURE = 0.1


def identity_loss(
    logits: torch.Tensor, labels: torch.Tensor, epsilon: float = LABEL_SMOOTHING
) -> torch.Tensor:
    """Label-smoothed cross-entropy: targets ``(1 - epsilon) * onehot + epsilon / C``.

    Args:
        logits: ``(B, C)`` class scores.
        labels: ``(B,)`` int64 labels in ``[0, C)``.
        epsilon: Smoothing weight.
    """
    return F.cross_entropy(logits.float(), labels, label_smoothing=epsilon)


def pairwise_euclidean(features: torch.Tensor) -> torch.Tensor:
    """``(B, D)`` -> ``(B, B)`` Euclidean distances, clamped at 1e-12 before the square root."""
    features = features.float()
    squared = features.pow(2).sum(dim=1, keepdim=True)
    distances = squared + squared.t() - 2.0 * features @ features.t()
    return distances.clamp(min=1e-12).sqrt()


def triplet_loss(
    features: torch.Tensor,
    labels: torch.Tensor,
    margin: float | None = TRIPLET_MARGIN,
    normalize: bool = False,
) -> torch.Tensor:
    """Batch-hard triplet loss.

    For each anchor: the farthest sample of its identity (itself included, at distance ~1e-6, as
    in the reference) and the closest sample of another identity. Anchors without a negative add
    zero.

    Args:
        features: ``(B, D)`` embeddings.
        labels: ``(B,)`` identities.
        margin: Hinge margin; ``None`` uses the soft margin ``log(1 + exp(d_ap - d_an))``.
        normalize: L2-normalise the features first.
    """
    if normalize:
        features = F.normalize(features, dim=1)
    distances = pairwise_euclidean(features)
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    hardest_positive = distances.masked_fill(~same, float("-inf")).amax(dim=1)
    hardest_negative = distances.masked_fill(same, float("inf")).amin(dim=1)
    difference = hardest_positive - hardest_negative
    if margin is None:
        return F.softplus(difference).mean()
    return F.relu(difference + margin).mean()


def supervised_contrastive_loss(
    queries: torch.Tensor,
    keys: torch.Tensor,
    query_labels: torch.Tensor,
    key_labels: torch.Tensor,
    temperature: float = 1.0,
) -> torch.Tensor:
    """Supervised contrastive loss from ``queries`` to ``keys`` (Khosla et al. 2020).

    Implements CLIP-ReID's stage-1 losses: for each query, the mean log-softmax (over all keys) of
    the keys with the query's label. CLIP-ReID uses it both ways: ``L_i2t`` (image queries, text
    keys) and ``L_t2i``.

    Args:
        queries: ``(N, D)`` features.
        keys: ``(M, D)`` features.
        query_labels: ``(N,)`` identities; every query needs at least one key of its identity.
        key_labels: ``(M,)`` identities.
        temperature: Divides the dot products.
    """
    logits = queries.float() @ keys.float().t() / temperature
    log_probability = logits.log_softmax(dim=1)
    positive = (query_labels.unsqueeze(1) == key_labels.unsqueeze(0)).float()
    mean_positive = (positive * log_probability).sum(dim=1) / positive.sum(dim=1)
    return -mean_positive.mean()


def nt_xent_loss(
    view_a: torch.Tensor, view_b: torch.Tensor, temperature: float = SIMCLR_TEMPERATURE
) -> torch.Tensor:
    """SimCLR's NT-Xent between two views of the same B samples (SLIP's formulation).

    Features are L2-normalised. For sample i of view a, the positive is i of view b; the negatives
    are every other sample of both views. The loss is averaged over both directions.

    Args:
        view_a: ``(B, D)`` embeddings of the first view.
        view_b: ``(B, D)`` embeddings of the second view.
        temperature: Softmax temperature (tau).
    """
    view_a = F.normalize(view_a.float(), dim=1)
    view_b = F.normalize(view_b.float(), dim=1)
    targets = torch.arange(view_a.shape[0], device=view_a.device)
    self_mask = torch.eye(view_a.shape[0], device=view_a.device, dtype=torch.bool)
    logits_aa = (view_a @ view_a.t() / temperature).masked_fill(self_mask, float("-inf"))
    logits_bb = (view_b @ view_b.t() / temperature).masked_fill(self_mask, float("-inf"))
    logits_ab = view_a @ view_b.t() / temperature
    loss_a = F.cross_entropy(torch.cat([logits_ab, logits_aa], dim=1), targets)
    loss_b = F.cross_entropy(torch.cat([logits_ab.t(), logits_bb], dim=1), targets)
    return (loss_a + loss_b) / 2


def image_to_text_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    labels: torch.Tensor,
    epsilon: float = LABEL_SMOOTHING,
) -> torch.Tensor:
    """Cross-entropy of each image against all identities' text features.

    Implements CLIP-ReID's stage-2 ``L_i2tce``, label-smoothed as its code does.

    Args:
        image_features: ``(B, E)`` projected image features.
        text_features: ``(C, E)`` one text feature per identity (row = label).
        labels: ``(B,)`` identities in ``[0, C)``.
        epsilon: Label smoothing.
    """
    logits = image_features.float() @ text_features.float().t()
    return identity_loss(logits, labels, epsilon)
