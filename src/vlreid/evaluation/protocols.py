"""The CUHK03 single-gallery-shot and VehicleID evaluation protocols.

Both sample the gallery at random and average over repeats, so both take a seed and are
reproducible. The Market protocol itself is :func:`vlreid.evaluation.metrics.evaluate_distmat`.
"""

from __future__ import annotations

import numpy as np
import torch

from vlreid.evaluation._accumulator import RankAccumulator
from vlreid.evaluation._inputs import ArrayLike, EvaluationError, check_labels, to_tensor
from vlreid.evaluation._ranking import MatchRanks, rank_matches, rows_per_chunk
from vlreid.evaluation.metrics import (
    DISTMAT_MEMORY_BUDGET,
    RankingResult,
    evaluate_distmat,
    evaluate_features,
)

__all__ = [
    "evaluate_single_gallery_shot",
    "evaluate_vehicleid",
    "mean_result",
    "one_per_identity",
    "vehicleid_gallery_draws",
]


def one_per_identity(pids: np.ndarray, priorities: np.ndarray) -> np.ndarray:
    """For each identity, the index of its item of highest priority.

    Args:
        pids: ``(N,)`` identities.
        priorities: ``(N,)`` distinct random numbers.

    Returns:
        Indices into ``pids``, one per distinct identity, in increasing pid order.
    """
    order = np.lexsort((-priorities, pids))  # by pid, then by decreasing priority
    sorted_pids = pids[order]
    is_first = np.ones(len(order), dtype=bool)
    is_first[1:] = sorted_pids[1:] != sorted_pids[:-1]
    return order[is_first]


def mean_result(results: list[RankingResult]) -> RankingResult:
    """Average mAP, CMC and mINP over repeats (valid and skipped counts from the first)."""
    return RankingResult(
        mAP=float(np.mean([result.mAP for result in results])),
        cmc=np.mean([result.cmc for result in results], axis=0),
        mINP=float(np.mean([result.mINP for result in results])),
        num_valid_queries=results[0].num_valid_queries,
        num_skipped_queries=results[0].num_skipped_queries,
    )


def evaluate_single_gallery_shot(
    distmat: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int = 50,
    num_repeats: int = 10,
    seed: int = 0,
    memory_budget: int = DISTMAT_MEMORY_BUDGET,
) -> RankingResult:
    """CUHK03's single-gallery-shot protocol (torchreid's ``use_metric_cuhk03=True``).

    For each query, the gallery items left by the Market filter (same pid and same camera
    removed) are reduced to one item per identity, chosen at random; CMC is computed on that
    reduced gallery and averaged over ``num_repeats`` draws. mAP and mINP use the whole filtered
    gallery, as torchreid's mAP does.

    The draws: ``priorities = np.random.default_rng(seed).random((num_repeats, G))``; in repeat
    ``r`` each identity is represented, for a query, by its remaining item of highest
    ``priorities[r]``. So for one query every item of an identity is equally likely, as in
    torchreid (which draws independently per query with the global numpy generator), and the
    result does not depend on how queries are chunked.

    Args:
        distmat: ``(Q, G)`` distances.
        q_pids: ``(Q,)`` query identities.
        g_pids: ``(G,)`` gallery identities.
        q_camids: ``(Q,)`` query cameras.
        g_camids: ``(G,)`` gallery cameras.
        max_rank: Length of the CMC curve.
        num_repeats: Random gallery draws to average over.
        seed: Seed of the draws.
        memory_budget: Bytes of working memory per chunk of query rows.

    Returns:
        Single-shot CMC; mAP and mINP of the Market protocol.
    """
    if num_repeats < 1:
        raise EvaluationError(f"num_repeats must be at least 1, got {num_repeats}")
    market = evaluate_distmat(
        distmat, q_pids, g_pids, q_camids, g_camids, max_rank, memory_budget=memory_budget
    )
    num_query, num_gallery = distmat.shape
    device = distmat.device if isinstance(distmat, torch.Tensor) else torch.device("cpu")
    labels = check_labels(num_query, num_gallery, q_pids, g_pids, q_camids, g_camids, device)
    priorities = np.random.default_rng(seed).random((num_repeats, num_gallery))
    g_pids_numpy = labels.g_pids.cpu().numpy()
    representatives = [
        torch.as_tensor(one_per_identity(g_pids_numpy, row), device=device) for row in priorities
    ]
    priorities_tensor = torch.as_tensor(priorities, device=device)
    accumulators = [RankAccumulator(max_rank, device) for _ in range(num_repeats)]
    rows = rows_per_chunk(num_gallery, memory_budget)
    for start in range(0, num_query, rows):
        distances = to_tensor(distmat[start : start + rows], device).to(torch.float32)
        matches = rank_matches(distances, labels, start)
        chunk_pids = labels.q_pids[start : start + rows]
        for repeat, accumulator in enumerate(accumulators):
            first_ranks = _single_shot_ranks(
                distances, matches, priorities_tensor[repeat], representatives[repeat],
                labels.g_pids, chunk_pids,
            )  # fmt: skip
            accumulator.num_valid += first_ranks.shape[0]
            clamped = first_ranks.clamp(max=max_rank + 1) - 1
            accumulator.first_match_counts += torch.bincount(clamped, minlength=max_rank + 1)
    cmc = np.mean([accumulator.cmc() for accumulator in accumulators], axis=0)
    return RankingResult(
        mAP=market.mAP,
        cmc=cmc,
        mINP=market.mINP,
        num_valid_queries=market.num_valid_queries,
        num_skipped_queries=market.num_skipped_queries,
    )


def _single_shot_ranks(
    distances: torch.Tensor,
    matches: MatchRanks,
    priorities: torch.Tensor,
    representatives: torch.Tensor,
    g_pids: torch.Tensor,
    chunk_pids: torch.Tensor,
) -> torch.Tensor:
    """Rank of the drawn match of each valid query among one drawn item per other identity.

    Returns:
        ``(V,)`` int64 ranks, one per query of the chunk that has a match.
    """
    rows, columns = matches.rows, matches.columns
    num_rows = distances.shape[0]
    match_priorities = priorities[columns]
    best = torch.full((num_rows,), -1.0, dtype=priorities.dtype, device=distances.device)
    best.scatter_reduce_(0, rows, match_priorities, reduce="amax")
    is_drawn = match_priorities == best[rows]
    drawn_rows, drawn_columns = rows[is_drawn], columns[is_drawn]
    drawn_distances = distances[drawn_rows, drawn_columns][:, None]
    other_distances = distances[drawn_rows[:, None], representatives[None, :]]
    before = (other_distances < drawn_distances) | (
        (other_distances == drawn_distances) & (representatives[None, :] < drawn_columns[:, None])
    )
    other_identity = g_pids[representatives][None, :] != chunk_pids[drawn_rows][:, None]
    return 1 + (before & other_identity).sum(1)


def vehicleid_gallery_draws(pids: np.ndarray, num_trials: int, seed: int) -> list[np.ndarray]:
    """The gallery of each VehicleID trial: one random image per identity.

    Args:
        pids: ``(N,)`` identities of the whole test set.
        num_trials: Number of draws.
        seed: Seed of ``np.random.default_rng`` that draws ``(num_trials, N)`` priorities.

    Returns:
        ``num_trials`` index arrays into ``pids`` (one image per identity each).
    """
    priorities = np.random.default_rng(seed).random((num_trials, len(pids)))
    return [one_per_identity(pids, row) for row in priorities]


def evaluate_vehicleid(
    query_features: ArrayLike,
    gallery_features: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    max_rank: int = 50,
    num_trials: int = 10,
    seed: int = 0,
    metric: str = "euclidean",
    device: torch.device | str | None = None,
) -> RankingResult:
    """VehicleID's protocol: one random gallery image per vehicle, the rest queries, 10 trials.

    Query and gallery are pooled into the test set (a VehicleID manifest already holds one such
    draw); each of ``num_trials`` trials draws one image per vehicle as the gallery
    (:func:`vehicleid_gallery_draws`) and queries with all the others. VehicleID has no cameras,
    so no gallery item is filtered out.

    Args:
        query_features: ``(Q, D)`` features.
        gallery_features: ``(G, D)`` features.
        q_pids: ``(Q,)`` vehicle identities.
        g_pids: ``(G,)`` vehicle identities.
        max_rank: Length of the CMC curve.
        num_trials: Number of random gallery draws.
        seed: Seed of the draws.
        metric: ``euclidean`` or ``cosine``.
        device: Where to compute; ``None`` uses the device of ``query_features``.

    Returns:
        mAP, CMC and mINP averaged over the trials.
    """
    if num_trials < 1:
        raise EvaluationError(f"num_trials must be at least 1, got {num_trials}")
    if device is None and isinstance(query_features, torch.Tensor):
        device = query_features.device
    device = torch.device(device or "cpu")
    features = torch.cat([to_tensor(query_features, device), to_tensor(gallery_features, device)])
    pids = torch.cat([to_tensor(q_pids, device), to_tensor(g_pids, device)])
    if features.ndim != 2 or features.shape[0] != pids.shape[0]:
        raise EvaluationError(
            f"features of shape {tuple(features.shape)} do not match {pids.shape[0]} pids"
        )
    pids_numpy = pids.cpu().numpy()
    results = []
    for gallery_indices in vehicleid_gallery_draws(pids_numpy, num_trials, seed):
        is_gallery = np.zeros(len(pids_numpy), dtype=bool)
        is_gallery[gallery_indices] = True
        gallery = torch.as_tensor(gallery_indices, device=device)
        query = torch.as_tensor(np.flatnonzero(~is_gallery), device=device)
        results.append(
            evaluate_features(
                features[query],
                features[gallery],
                pids[query],
                pids[gallery],
                torch.zeros_like(query),
                torch.ones_like(gallery),
                max_rank=max_rank,
                metric=metric,
                device=device,
            )  # fmt: skip
        )
    return mean_result(results)
