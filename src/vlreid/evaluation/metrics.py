"""ReID ranking metrics: mAP, CMC and mINP, exact and in bounded memory.

Protocol (the Market-1501 mode of torchreid's ``evaluate_rank``): for each query, gallery items
with the query's pid *and* camera are removed; a query left without any matching gallery item is
skipped (and counted); AP is the mean of the precision at each correct match; CMC at rank k is
the fraction of the valid queries with a correct match within the first k; mINP is the mean of
``number of matches / rank of the last match`` (Ye et al., "Deep Learning for Person
Re-identification: A Survey and Outlook", TPAMI 2021).

How it is computed: only the ranks of a query's matches matter. The rank of a match is one plus
the number of valid gallery items ranked before it, so instead of sorting every gallery row the
engine sorts the (few) matches of each query and counts the non-matching items before each of
them (:mod:`vlreid.evaluation._ranking`). Where few items of a chunk of queries lie no farther
than their query's farthest match (a good model), one comparison pass finds them and only those
are sorted; otherwise every distance goes through a monotone per-row map onto integer buckets
(fine between the query's nearest and farthest match), one ``bincount`` counts the buckets, and
only the items that share a bucket with a match are compared exactly. Every step is a vectorised
pass, so the time depends little on how good the model is. Distances come in row chunks (from a
distance matrix, or by a chunked matrix product from features), so the query x gallery matrix
is never held whole; from features on the CPU, the parts of each chunk of the product are
ranked on torch's thread count.

Conventions that differ from torchreid, on purpose:
    - Ties: gallery items at exactly the same distance are ranked by gallery index (a stable
      sort). torchreid's ``np.argsort`` (quicksort) leaves the order of ties unspecified.
    - Distances are compared in float32 (torchreid and fast-reid compute them in float32);
      float64 inputs are rounded to float32 first.
    - ``cmc`` always has ``max_rank`` entries. When fewer gallery items remain, the curve has
      reached 1.0 and stays there; torchreid shortens the curve to the gallery size instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from vlreid.evaluation._accumulator import ChunkRanker, RankAccumulator, ranking_workers
from vlreid.evaluation._inputs import ArrayLike, EvaluationError, check_labels, to_tensor
from vlreid.evaluation._ranking import BYTES_PER_DISTANCE, rows_per_chunk

logger = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("euclidean", "cosine")
__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "DISTMAT_MEMORY_BUDGET",
    "METRICS",
    "EvaluationError",
    "GalleryDistances",
    "RankingResult",
    "evaluate_distmat",
    "evaluate_features",
    "feature_chunks",
    "pairwise_distances",
    "resolve_memory_budget",
]

DEFAULT_MEMORY_BUDGET = 256 * 2**20
"""Bytes of working memory per chunk of query rows when distances come from features on the CPU
(larger chunks make the matrix product efficient)."""
DISTMAT_MEMORY_BUDGET = 64 * 2**20
"""The same from a distance matrix, where nothing gains from large chunks."""
RANKED_ENTRIES = 2**21
"""On the CPU, distances computed from features are ranked this many (query row x gallery item)
entries at a time by each thread (about 50 MB of working memory each): at MSMT17 size on one
thread the bucket ranking took 3.7 s this way against 7.4 s in the product's 136-row chunks
(``benchmarks/evaluation.py``, before the sorted path)."""
CUDA_FREE_MEMORY_SHARE = 0.5
"""On CUDA, the default budget is this share of the device's free memory when the call starts."""


def resolve_memory_budget(
    memory_budget: int | None, device: torch.device, cpu_default: int = DEFAULT_MEMORY_BUDGET
) -> int:
    """``memory_budget`` if given, else half the free memory on CUDA, else ``cpu_default``."""
    if memory_budget is not None:
        return memory_budget
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * CUDA_FREE_MEMORY_SHARE)
    return cpu_default


@dataclass(frozen=True)
class RankingResult:
    """Ranking metrics of one evaluation.

    Attributes:
        mAP: Mean average precision over the valid queries, in [0, 1].
        cmc: ``(max_rank,)`` float64; ``cmc[k - 1]`` is the fraction of valid queries with a
            correct match within the top k.
        mINP: Mean inverse negative penalty over the valid queries, in [0, 1].
        num_valid_queries: Queries with at least one match left after the camera filter.
        num_skipped_queries: Queries without any such match (left out of every average).
    """

    mAP: float
    cmc: np.ndarray = field(repr=False)
    mINP: float
    num_valid_queries: int
    num_skipped_queries: int = 0

    def rank(self, k: int) -> float:
        """CMC at rank ``k`` (1-based)."""
        if not 1 <= k <= len(self.cmc):
            raise ValueError(f"rank {k} outside 1..{len(self.cmc)}")
        return float(self.cmc[k - 1])

    def summary(self) -> dict[str, float]:
        """``{"mAP", "rank1", "rank5", "rank10", "mINP"}``, the figures papers report.

        Ranks beyond ``len(cmc)`` repeat its last value.
        """
        last = len(self.cmc)
        return {
            "mAP": float(self.mAP),
            "rank1": float(self.cmc[min(1, last) - 1]),
            "rank5": float(self.cmc[min(5, last) - 1]),
            "rank10": float(self.cmc[min(10, last) - 1]),
            "mINP": float(self.mINP),
        }


def _has_nan(values: torch.Tensor) -> bool:
    # a sum is NaN when a term is (or when +inf meets -inf): one cheap pass, then make sure
    return bool(torch.isnan(values.sum())) and bool(torch.isnan(values).any())


def _finish(accumulator: RankAccumulator, num_queries: int) -> RankingResult:
    if accumulator.num_valid == 0:
        raise EvaluationError(
            f"no valid query: none of the {num_queries} queries has a gallery item with the same "
            "pid from another camera"
        )
    skipped = num_queries - accumulator.num_valid
    if skipped:
        logger.info("skipped %d of %d queries without a valid match", skipped, num_queries)
    return RankingResult(
        mAP=accumulator.ap_sum / accumulator.num_valid,
        cmc=accumulator.cmc(),
        mINP=accumulator.inp_sum / accumulator.num_valid,
        num_valid_queries=accumulator.num_valid,
        num_skipped_queries=skipped,
    )


def evaluate_distmat(
    distmat: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int = 50,
    memory_budget: int | None = None,
) -> RankingResult:
    """Market-protocol mAP, CMC and mINP from a distance matrix (smaller is closer).

    Args:
        distmat: ``(Q, G)`` distances, numpy or torch (any device; the work runs there).
        q_pids: ``(Q,)`` query identities.
        g_pids: ``(G,)`` gallery identities (distractors keep their own pid, e.g. 0).
        q_camids: ``(Q,)`` query cameras.
        g_camids: ``(G,)`` gallery cameras.
        max_rank: Length of the CMC curve.
        memory_budget: Bytes of working memory per chunk of query rows; ``None``:
            ``DISTMAT_MEMORY_BUDGET`` on the CPU, half the free memory on CUDA.

    Returns:
        The metrics over the valid queries.

    Raises:
        EvaluationError: Shapes or lengths disagree, a distance is NaN, or no query is valid.
    """
    if distmat.ndim != 2:
        raise EvaluationError(f"distmat must be 2-D (Q, G), got shape {tuple(distmat.shape)}")
    num_query, num_gallery = distmat.shape
    device = distmat.device if isinstance(distmat, torch.Tensor) else torch.device("cpu")
    labels = check_labels(num_query, num_gallery, q_pids, g_pids, q_camids, g_camids, device)
    if max_rank < 1:
        raise EvaluationError(f"max_rank must be at least 1, got {max_rank}")
    accumulator = RankAccumulator(max_rank, device)
    budget = resolve_memory_budget(memory_budget, device, DISTMAT_MEMORY_BUDGET)
    # one worker: on a matrix already in memory, two threads ranking halves of each chunk were
    # slower than one thread in 3 of 4 regimes (benchmarks/evaluation.py sizes, 2 cores)
    rows = min(rows_per_chunk(num_gallery, budget), num_query)
    with ChunkRanker(accumulator, labels, rows, num_gallery, device) as ranker:
        for start in range(0, num_query, rows):
            stop = min(start + rows, num_query)
            distances = to_tensor(distmat[start:stop], device).to(torch.float32)
            if _has_nan(distances):
                raise EvaluationError(f"distmat has NaN values in query rows {start}..{stop - 1}")
            ranker.rank(distances, start)
    return _finish(accumulator, num_query)


class GalleryDistances:
    """Distances from chunks of queries to a fixed gallery, as torchreid's
    ``compute_distance_matrix``; the gallery's share of the work is done once.

    Args:
        gallery_features: ``(G, D)`` float32.
        metric: ``euclidean`` (squared Euclidean distance; same ranking as the distance) or
            ``cosine`` (one minus the cosine similarity).
    """

    def __init__(self, gallery_features: torch.Tensor, metric: str = "euclidean") -> None:
        if metric not in METRICS:
            expected = ", ".join(METRICS)
            raise EvaluationError(f"unknown metric {metric!r}; expected one of {expected}")
        self.metric = metric
        if metric == "euclidean":
            self.gallery = gallery_features
            self.gallery_norms = gallery_features.pow(2).sum(1)
        else:
            self.gallery = torch.nn.functional.normalize(gallery_features, dim=1)

    def __call__(
        self, query_features: torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``(B, D)`` query features -> ``(B, G)`` float32 distances (into ``out`` if given)."""
        if self.metric == "euclidean":
            query_norms = query_features.pow(2).sum(1, keepdim=True)
            distances = torch.add(query_norms, self.gallery_norms, out=out)
            return distances.addmm_(query_features, self.gallery.T, alpha=-2)
        query_unit = torch.nn.functional.normalize(query_features, dim=1)
        return torch.matmul(query_unit, self.gallery.T, out=out).neg_().add_(1)


def pairwise_distances(
    query_features: torch.Tensor, gallery_features: torch.Tensor, metric: str = "euclidean"
) -> torch.Tensor:
    """``(B, G)`` distances between ``(B, D)`` and ``(G, D)`` features (see
    :class:`GalleryDistances` for the metrics)."""
    return GalleryDistances(gallery_features, metric)(query_features)


def evaluate_features(
    query_features: ArrayLike,
    gallery_features: ArrayLike,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    max_rank: int = 50,
    metric: str = "euclidean",
    device: torch.device | str | None = None,
    memory_budget: int | None = None,
) -> RankingResult:
    """Market-protocol mAP, CMC and mINP from features, never holding all Q x G distances.

    Distances are computed by :func:`pairwise_distances` one chunk of query rows at a time, sized
    so that a chunk and its bookkeeping fit in ``memory_budget``.

    Args:
        query_features: ``(Q, D)`` features, numpy or torch.
        gallery_features: ``(G, D)`` features.
        q_pids: ``(Q,)`` query identities.
        g_pids: ``(G,)`` gallery identities.
        q_camids: ``(Q,)`` query cameras.
        g_camids: ``(G,)`` gallery cameras.
        max_rank: Length of the CMC curve.
        metric: ``euclidean`` or ``cosine`` (see :func:`pairwise_distances`).
        device: Where to compute; ``None`` uses the device of ``query_features`` (CPU for numpy).
        memory_budget: Bytes of working memory per chunk of query rows (the distances and the
            ranking's buffers); ``None``: ``DEFAULT_MEMORY_BUDGET`` on the CPU, half the free
            memory on CUDA (``torch.cuda.mem_get_info``).

    Returns:
        The metrics over the valid queries.

    Raises:
        EvaluationError: Shapes or lengths disagree, a feature is NaN, the metric is unknown, or
            no query is valid.
    """
    if metric not in METRICS:
        raise EvaluationError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    for name, features in (("query", query_features), ("gallery", gallery_features)):
        if features.ndim != 2:
            raise EvaluationError(
                f"{name} features must be 2-D (N, D), got {tuple(features.shape)}"
            )
    if query_features.shape[1] != gallery_features.shape[1]:
        raise EvaluationError(
            f"query features have dimension {query_features.shape[1]} but gallery features "
            f"{gallery_features.shape[1]}"
        )
    if device is None:
        is_tensor = isinstance(query_features, torch.Tensor)
        device = query_features.device if is_tensor else torch.device("cpu")
    device = torch.device(device)
    query = to_tensor(query_features, device).to(torch.float32)
    gallery = to_tensor(gallery_features, device).to(torch.float32)
    if _has_nan(query) or _has_nan(gallery):
        raise EvaluationError("features contain NaN values")
    num_query, num_gallery = query.shape[0], gallery.shape[0]
    labels = check_labels(num_query, num_gallery, q_pids, g_pids, q_camids, g_camids, device)
    if max_rank < 1:
        raise EvaluationError(f"max_rank must be at least 1, got {max_rank}")
    accumulator = RankAccumulator(max_rank, device)
    distances_to_gallery = GalleryDistances(gallery, metric)
    budget = resolve_memory_budget(memory_budget, device)
    workers = ranking_workers(device)
    rows, ranked_rows = feature_chunks(num_gallery, budget, device, workers)
    rows, ranked_rows = min(rows, num_query), min(ranked_rows, num_query)
    buffer = torch.empty(rows * num_gallery, dtype=torch.float32, device=device)
    with ChunkRanker(accumulator, labels, ranked_rows, num_gallery, device, workers) as ranker:
        for start in range(0, num_query, rows):
            chunk = query[start : start + rows]
            distances = buffer[: chunk.shape[0] * num_gallery].view(chunk.shape[0], num_gallery)
            ranker.rank(distances_to_gallery(chunk, out=distances), start)
    return _finish(accumulator, num_query)


def feature_chunks(
    num_gallery: int, memory_budget: int, device: torch.device, workers: int = 1
) -> tuple[int, int]:
    """Query rows per distance chunk of :func:`evaluate_features`, and per ranking pass.

    On CUDA both are :func:`rows_per_chunk` of the budget. On the CPU a chunk of the matrix
    product is ranked ``RANKED_ENTRIES`` at a time by each of ``workers`` threads, so that the
    ranking's passes run in the last-level cache while the product keeps large chunks; the
    chunk's distances (4 bytes per entry) and the workers' buffers together fit in
    ``memory_budget``.
    """
    if device.type != "cpu":
        rows = rows_per_chunk(num_gallery, memory_budget)
        return rows, rows
    share = memory_budget // workers
    ranked = rows_per_chunk(num_gallery, min(share, RANKED_ENTRIES * BYTES_PER_DISTANCE))
    left = memory_budget - workers * ranked * num_gallery * (BYTES_PER_DISTANCE - 4)
    return max(ranked, left // (4 * num_gallery)), ranked
