"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017), vectorised in torch and sparse, with a memory estimate up front.

The definitions follow the authors' code as CLIP-ReID and TransReID run it on features:

1. ``d(i, j)``: distance between all N = Q + G query and gallery features (squared Euclidean, or
   one minus the cosine similarity), divided by the largest distance of row ``i``.
2. ``N(i, k)``: the k + 1 nearest items of ``i`` (``i`` itself included); ``R(i, k)``: those of
   them that also have ``i`` among their own k + 1 nearest (k-reciprocal neighbours), Eq. (3).
3. The expanded set ``R*(i, k1)``: ``R(i, k1)`` plus ``R(c, round(k1 / 2))`` of each candidate
   ``c`` in ``R(i, k1)`` that shares more than 2/3 of its members with ``R(i, k1)``, Eq. (8).
4. ``V[i, j] = exp(-d(i, j))`` over ``R*(i, k1)``, normalised to sum 1 (Eq. 7), then replaced by
   the mean of the ``V`` rows of the k2 nearest items of ``i`` (local query expansion, Eq. 11).
5. Jaccard distance ``1 - sum_k min(V[i, k], V[j, k]) / sum_k max(...)``, computed as the
   authors do as ``1 - m / (2 - m)`` with ``m = sum_k min`` (Eq. 10), and the final distance
   ``(1 - lambda) * jaccard + lambda * d``, Eq. (12).

Differences from the authors' numpy code: ``V`` stays float32 (they round it to float16), and
the k nearest are taken with ``torch.topk``, which breaks exact ties at the k-th neighbour in an
unspecified order (as their ``np.argsort`` does). ``V`` is sparse (at most a few hundred non-zeros
per row), so memory is dominated by the ``(Q, G)`` result and a chunk of distance rows, not by
the ``(Q + G)^2`` matrices of the original; :func:`estimate_rerank_memory` gives the figure and
:func:`k_reciprocal_rerank` refuses, with the estimate, what exceeds its ``memory_limit``.
"""

from __future__ import annotations

import logging

import torch

from vlreid.evaluation._inputs import ArrayLike, EvaluationError, to_tensor
from vlreid.evaluation.metrics import METRICS, GalleryDistances

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_MEMORY_LIMIT", "estimate_rerank_memory", "k_reciprocal_rerank"]

DEFAULT_MEMORY_LIMIT = 4 * 2**30
"""Bytes re-ranking may use by default."""
CHUNK_BYTES = 128 * 2**20
"""Working bytes of one chunk of rows (distance rows, gathered features, Jaccard terms)."""


def estimate_rerank_memory(
    num_query: int, num_gallery: int, dimension: int, k1: int = 20, k2: int = 6
) -> int:
    """Bytes that :func:`k_reciprocal_rerank` needs at most, chunks included.

    The ``(Q, G)`` float32 result and the normalised distances it starts from, the features, and
    the sparse rows of ``V`` before and after query expansion (worst case: every expansion full).
    """
    num_all = num_query + num_gallery
    expansion = (k1 + 1) * (round(k1 / 2) + 2)
    sparse_rows = num_all * expansion * 20  # row, column (int64) and value (float32)
    return int(
        2 * 4 * num_query * num_gallery
        + 4 * num_all * dimension
        + sparse_rows * (1 + 2 * k2)
        + 3 * CHUNK_BYTES
    )


def _nearest(
    features: torch.Tensor, num_query: int, metric: str, width: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row maxima ``(N,)``, ``width`` nearest items ``(N, width)`` and normalised query-gallery
    distances ``(Q, G)``, one chunk of distance rows at a time."""
    num_all = features.shape[0]
    rows = max(1, CHUNK_BYTES // (8 * num_all))
    row_max = torch.empty(num_all, device=features.device)
    nearest = torch.empty((num_all, width), dtype=torch.int64, device=features.device)
    original = torch.empty((num_query, num_all - num_query), device=features.device)
    distances_to_all = GalleryDistances(features, metric)
    for start in range(0, num_all, rows):
        distances = distances_to_all(features[start : start + rows])
        if metric == "euclidean":
            distances.clamp_min_(0)
        maxima = distances.amax(1).clamp_min(torch.finfo(torch.float32).tiny)
        distances /= maxima[:, None]
        row_max[start : start + rows] = maxima
        nearest[start : start + rows] = distances.topk(width, 1, largest=False).indices
        if start < num_query:
            stop = min(start + rows, num_query)
            original[start:stop] = distances[: stop - start, num_query:]
    return row_max, nearest, original


def _reciprocal(nearest: torch.Tensor, width: int) -> torch.Tensor:
    """``(N, width)`` bool: is ``nearest[i, a]`` among whose ``width`` nearest ``i`` is, Eq. (3)."""
    neighbours = nearest[:, :width]
    mask = torch.empty(neighbours.shape, dtype=torch.bool, device=nearest.device)
    rows = max(1, CHUNK_BYTES // (8 * width * width))
    for start in range(0, neighbours.shape[0], rows):
        own = torch.arange(start, min(start + rows, neighbours.shape[0]), device=nearest.device)
        their_neighbours = neighbours[neighbours[start : start + rows]]  # (b, width, width)
        mask[start : start + rows] = (their_neighbours == own[:, None, None]).any(2)
    return mask


def _expanded_weights(
    features: torch.Tensor,
    row_max: torch.Tensor,
    nearest: torch.Tensor,
    k1: int,
    metric: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sparse ``V`` before query expansion, Eqs. (7)-(8): COO ``rows``, ``columns``, ``values``
    (sorted by row, then column)."""
    num_all, device = features.shape[0], features.device
    width, half_width = min(k1 + 1, num_all), min(round(k1 / 2) + 1, num_all)
    reciprocal = _reciprocal(nearest, width)
    half_reciprocal = _reciprocal(nearest, half_width)
    neighbours, half_neighbours = nearest[:, :width], nearest[:, :half_width]
    members = width + width * half_width
    rows_per_chunk = max(1, CHUNK_BYTES // (members * (features.shape[1] * 8 + width * 8)))
    all_rows, all_columns, all_values = [], [], []
    for start in range(0, num_all, rows_per_chunk):
        stop = min(start + rows_per_chunk, num_all)
        own = torch.where(reciprocal[start:stop], neighbours[start:stop], -1)  # R(i, k1)
        candidates = neighbours[start:stop]  # (b, width); valid where reciprocal
        their = torch.where(half_reciprocal[candidates], half_neighbours[candidates], -2)
        shared = (their[..., None] == own[:, None, None, :]).any(3).sum(2)  # (b, width)
        sizes = half_reciprocal[candidates].sum(2)
        accepted = reciprocal[start:stop] & (shared.double() > 2.0 / 3.0 * sizes.double())
        expansion = torch.where(accepted[..., None], their, -1).flatten(1)
        expansion = torch.cat([own, expansion], 1).clamp_min(-1)
        expansion = torch.where(expansion < 0, num_all, expansion).sort(1).values
        unique = expansion < num_all
        unique[:, 1:] &= expansion[:, 1:] != expansion[:, :-1]
        row_index, slot = unique.nonzero(as_tuple=True)
        columns = expansion[row_index, slot]
        rows = row_index + start
        distances = _pair_distances(features, rows, columns, metric) / row_max[rows]
        weights = torch.exp(-distances)
        totals = torch.zeros(stop - start, device=device).index_add_(0, row_index, weights)
        all_rows.append(rows)
        all_columns.append(columns)
        all_values.append(weights / totals[row_index])
    return torch.cat(all_rows), torch.cat(all_columns), torch.cat(all_values)


def _pair_distances(
    features: torch.Tensor, rows: torch.Tensor, columns: torch.Tensor, metric: str
) -> torch.Tensor:
    """Distances of the pairs ``(rows[n], columns[n])``, as :class:`GalleryDistances` defines."""
    first, second = features[rows], features[columns]
    if metric == "euclidean":
        squared = first.pow(2).sum(1) + second.pow(2).sum(1) - 2 * (first * second).sum(1)
        return squared.clamp_min(0)
    first = torch.nn.functional.normalize(first, dim=1)
    second = torch.nn.functional.normalize(second, dim=1)
    return 1 - (first * second).sum(1)


def _query_expansion(
    rows: torch.Tensor,
    columns: torch.Tensor,
    values: torch.Tensor,
    nearest: torch.Tensor,
    k2: int,
) -> torch.Tensor:
    """Eq. (11): row i of the result is the mean of the ``V`` rows of its k2 nearest items.

    Returns:
        The coalesced sparse ``(N, N)`` expanded ``V``.
    """
    num_all = nearest.shape[0]
    row_starts = torch.searchsorted(rows, torch.arange(num_all + 1, device=rows.device))
    sources = nearest[:, :k2].reshape(-1)  # (N * k2,) rows of V to average
    lengths = row_starts[sources + 1] - row_starts[sources]
    targets = torch.arange(num_all, device=rows.device).repeat_interleave(k2)
    target_of_entry = targets.repeat_interleave(lengths)
    first_entry = (row_starts[sources] - (lengths.cumsum(0) - lengths)).repeat_interleave(lengths)
    entries = first_entry + torch.arange(target_of_entry.shape[0], device=rows.device)
    expanded = torch.sparse_coo_tensor(
        torch.stack([target_of_entry, columns[entries]]),
        values[entries] / k2,
        (num_all, num_all),
        check_invariants=False,
    )
    return expanded.coalesce()


def _jaccard(weights: torch.Tensor, num_query: int) -> torch.Tensor:
    """``(Q, G)`` Jaccard distances of Eq. (10) between query rows and gallery rows."""
    indices, values = weights.indices(), weights.values()
    num_all, device = weights.shape[0], values.device
    is_gallery = indices[0] >= num_query
    # the gallery entries, grouped by column k: which gallery item j has V[j, k] > 0
    gallery_columns, order = torch.sort(indices[1][is_gallery], stable=True)
    gallery_rows = indices[0][is_gallery][order] - num_query
    gallery_values = values[is_gallery][order]
    column_starts = torch.searchsorted(gallery_columns, torch.arange(num_all + 1, device=device))
    minimum_sums = torch.zeros((num_query, num_all - num_query), device=device)
    query_entries = (~is_gallery).nonzero().squeeze(1)
    query_columns = indices[1][query_entries]
    counts = column_starts[query_columns + 1] - column_starts[query_columns]
    cumulative = counts.cumsum(0)
    terms_per_chunk = max(1, CHUNK_BYTES // 32)
    start, num_entries = 0, query_entries.shape[0]
    while start < num_entries:
        done = int(cumulative[start - 1]) if start else 0
        end = int(torch.searchsorted(cumulative, done + terms_per_chunk, right=True))
        end = max(end, start + 1)
        chunk, chunk_counts = query_entries[start:end], counts[start:end]
        # one term per (query entry (i, k), gallery entry (j, k)) pair sharing the column k
        query_row = indices[0][chunk].repeat_interleave(chunk_counts)
        query_value = values[chunk].repeat_interleave(chunk_counts)
        skipped = chunk_counts.cumsum(0) - chunk_counts
        first = (column_starts[query_columns[start:end]] - skipped).repeat_interleave(chunk_counts)
        entry = first + torch.arange(query_row.shape[0], device=device)
        pair_minimum = torch.minimum(query_value, gallery_values[entry])
        flat = query_row * (num_all - num_query) + gallery_rows[entry]
        minimum_sums.view(-1).index_add_(0, flat, pair_minimum)
        start = end
    return 1 - minimum_sums / (2 - minimum_sums)


def k_reciprocal_rerank(
    query_features: ArrayLike,
    gallery_features: ArrayLike,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    metric: str = "euclidean",
    device: torch.device | str | None = None,
    memory_limit: int = DEFAULT_MEMORY_LIMIT,
) -> torch.Tensor:
    """Re-ranked query-gallery distances, to evaluate with :func:`evaluate_distmat`.

    Args:
        query_features: ``(Q, D)`` features.
        gallery_features: ``(G, D)`` features.
        k1: Size of the k-reciprocal neighbourhood (paper: 20).
        k2: Neighbours averaged by local query expansion (paper: 6; 1 disables it).
        lambda_value: Weight of the original distance in the final one (paper: 0.3).
        metric: ``euclidean`` (squared) or ``cosine`` distance.
        device: Where to compute; ``None`` uses the device of ``query_features``.
        memory_limit: Bytes the computation may use; larger problems are refused.

    Returns:
        ``(Q, G)`` float32 distances on ``device``.

    Raises:
        EvaluationError: Bad shapes or parameters, or the estimate exceeds ``memory_limit``.
    """
    if metric not in METRICS:
        raise EvaluationError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    if k1 < 1 or k2 < 1 or not 0.0 <= lambda_value <= 1.0:
        raise EvaluationError(
            f"re-ranking needs k1 >= 1, k2 >= 1 and 0 <= lambda <= 1, got {k1}, {k2}, "
            f"{lambda_value}"
        )
    if device is None and isinstance(query_features, torch.Tensor):
        device = query_features.device
    device = torch.device(device or "cpu")
    query = to_tensor(query_features, device).to(torch.float32)
    gallery = to_tensor(gallery_features, device).to(torch.float32)
    if query.ndim != 2 or gallery.ndim != 2 or query.shape[1] != gallery.shape[1]:
        raise EvaluationError(
            f"re-ranking needs (Q, D) and (G, D) features, got {tuple(query.shape)} and "
            f"{tuple(gallery.shape)}"
        )
    if query.shape[0] == 0 or gallery.shape[0] == 0:
        raise EvaluationError("re-ranking needs at least one query and one gallery item")
    num_query, num_gallery = query.shape[0], gallery.shape[0]
    needed = estimate_rerank_memory(num_query, num_gallery, query.shape[1], k1, k2)
    if needed > memory_limit:
        raise EvaluationError(
            f"re-ranking {num_query} queries against {num_gallery} gallery items needs about "
            f"{needed / 2**30:.1f} GiB, above the limit of {memory_limit / 2**30:.1f} GiB; "
            "raise the limit or evaluate without re-ranking"
        )
    logger.info("k-reciprocal re-ranking (about %.2f GiB)", needed / 2**30)
    features = torch.cat([query, gallery])
    num_all = features.shape[0]
    width = min(max(k1 + 1, k2), num_all)
    row_max, nearest, original = _nearest(features, num_query, metric, width)
    rows, columns, values = _expanded_weights(features, row_max, nearest, k1, metric)
    if k2 != 1:
        weights = _query_expansion(rows, columns, values, nearest, min(k2, num_all))
    else:
        indices = torch.stack([rows, columns])
        weights = torch.sparse_coo_tensor(indices, values, (num_all,) * 2, check_invariants=False)
        weights = weights.coalesce()
    jaccard = _jaccard(weights, num_query)
    return jaccard.mul_(1 - lambda_value).add_(original, alpha=lambda_value)
