"""The core of the ranking metrics: the rank of every match of a chunk of queries, without sorts.

For a query, let the *matches* be the gallery items with its pid from another camera and the
*negatives* the items with another pid (items with its pid from its camera are ignored). With
ties broken by gallery index, an item precedes another when its ``(distance, gallery index)`` is
smaller. The rank of the j-th match (0-based, in that order) is ``1 + j + (number of negatives
preceding it)``. Both orders are read from one int64 key per item::

    key = query row << (32 + C)  |  order-preserving bits of the float32 distance << C  |  column

with ``C`` bits for the gallery column, so one sort of the (few) match keys and one
``searchsorted`` of the negative keys into them count, for every match of every query of the
chunk at once, the negatives before it. Negatives farther than their query's farthest match
cannot precede any match and are dropped before the keys are built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vlreid.errors import ReIDError

ArrayLike = np.ndarray | torch.Tensor
BYTES_PER_DISTANCE = 56
"""Working bytes per query x gallery entry of a chunk: the float32 distance, three boolean
masks and, when every negative precedes a match, its coordinates, distance, key and bin."""


class EvaluationError(ReIDError):
    """The inputs of an evaluation are inconsistent (shapes, lengths, no valid query, NaN)."""


@dataclass(frozen=True)
class Labels:
    """Identities and cameras of queries and gallery, as int64 tensors on the working device."""

    q_pids: torch.Tensor
    g_pids: torch.Tensor
    q_camids: torch.Tensor
    g_camids: torch.Tensor
    gallery_by_pid: torch.Tensor
    """``(G,)`` gallery indices sorted by pid (stable), so one pid's items are contiguous."""
    sorted_g_pids: torch.Tensor
    """``(G,)`` ``g_pids[gallery_by_pid]``."""


@dataclass(frozen=True)
class MatchRanks:
    """The ranks of the matches of a chunk of B queries, M matches in all.

    Attributes:
        rows: ``(M,)`` query row in the chunk, non-decreasing.
        columns: ``(M,)`` gallery index.
        positions: ``(M,)`` 0-based index of the match among its query's matches, in rank order.
        ranks: ``(M,)`` 1-based rank among the query's valid gallery items.
        keys: ``(M,)`` sorted int64 keys (the module's packing) of the matches.
        num_matches: ``(B,)`` matches per query.
    """

    rows: torch.Tensor
    columns: torch.Tensor
    positions: torch.Tensor
    ranks: torch.Tensor
    keys: torch.Tensor
    num_matches: torch.Tensor


def to_tensor(values: ArrayLike, device: torch.device) -> torch.Tensor:
    """A tensor on ``device`` sharing memory with ``values`` when possible."""
    if isinstance(values, torch.Tensor):
        return values.detach().to(device)
    return torch.as_tensor(np.asarray(values), device=device)


def _label_tensor(
    name: str, values: ArrayLike, expected: int, device: torch.device
) -> torch.Tensor:
    tensor = to_tensor(values, device)
    if tensor.ndim != 1 or tensor.shape[0] != expected:
        raise EvaluationError(f"{name} has shape {tuple(tensor.shape)}, expected ({expected},)")
    if tensor.is_floating_point():
        if not torch.equal(tensor, tensor.round()):
            raise EvaluationError(f"{name} must hold integers, got fractional values")
    elif tensor.dtype == torch.bool or tensor.is_complex():
        raise EvaluationError(f"{name} must hold integers, got {tensor.dtype}")
    return tensor.to(torch.int64)


def check_labels(
    num_query: int,
    num_gallery: int,
    q_pids: ArrayLike,
    g_pids: ArrayLike,
    q_camids: ArrayLike,
    g_camids: ArrayLike,
    device: torch.device,
) -> Labels:
    """Validate label lengths against ``Q`` and ``G`` and move them to ``device`` as int64."""
    if num_query == 0:
        raise EvaluationError("no query to evaluate (0 query items)")
    if num_gallery == 0:
        raise EvaluationError("the gallery is empty (0 gallery items)")
    if num_gallery > 2**31:
        raise EvaluationError(f"gallery of {num_gallery} items exceeds the 2**31 supported")
    gallery_pids = _label_tensor("g_pids", g_pids, num_gallery, device)
    sorted_g_pids, gallery_by_pid = torch.sort(gallery_pids, stable=True)
    return Labels(
        q_pids=_label_tensor("q_pids", q_pids, num_query, device),
        g_pids=gallery_pids,
        q_camids=_label_tensor("q_camids", q_camids, num_query, device),
        g_camids=_label_tensor("g_camids", g_camids, num_gallery, device),
        gallery_by_pid=gallery_by_pid,
        sorted_g_pids=sorted_g_pids,
    )


def column_bits(num_gallery: int) -> int:
    """Bits of a key that hold the gallery column."""
    return max(1, (num_gallery - 1).bit_length())


def rows_per_chunk(num_gallery: int, memory_budget: int) -> int:
    """Query rows per chunk: within ``memory_budget`` bytes and within the key's row bits."""
    by_memory = memory_budget // (BYTES_PER_DISTANCE * num_gallery)
    by_key = 2 ** (31 - column_bits(num_gallery))
    return int(max(1, min(by_memory, by_key)))


def pack_keys(
    rows: torch.Tensor, distances: torch.Tensor, columns: torch.Tensor, bits: int
) -> torch.Tensor:
    """int64 keys ordered by (row, distance, column); ``distances`` float32 without NaN."""
    distances = distances + 0.0  # turns -0.0 into +0.0, which compares equal to it
    raw = distances.view(torch.int32).to(torch.int64)
    # IEEE bits order non-negative floats like integers and negative ones in reverse: flip the
    # sign bit of the former (x + 2**31) and every bit of the latter (-1 - x), into [0, 2**32)
    ordered = raw ^ ((raw >> 31) | 0x80000000)
    return (rows << (32 + bits)) | (ordered << bits) | columns


def rank_matches(distances: torch.Tensor, labels: Labels, start: int) -> MatchRanks:
    """Rank every match of the queries ``start .. start + B - 1``.

    Args:
        distances: ``(B, G)`` float32 distances of the chunk's queries to the whole gallery.
        labels: Labels of all queries and the gallery.
        start: Index of the chunk's first query.

    Returns:
        The ranks of the chunk's matches.
    """
    num_rows, num_gallery = distances.shape
    device = distances.device
    q_pids = labels.q_pids[start : start + num_rows]
    q_camids = labels.q_camids[start : start + num_rows]
    # the gallery items of each query's pid: a contiguous run of the gallery sorted by pid
    first = torch.searchsorted(labels.sorted_g_pids, q_pids)
    counts = torch.searchsorted(labels.sorted_g_pids, q_pids, right=True) - first
    rows = torch.repeat_interleave(torch.arange(num_rows, device=device), counts)
    offsets = torch.arange(rows.shape[0], device=device) - (counts.cumsum(0) - counts)[rows]
    columns = labels.gallery_by_pid[first[rows] + offsets]
    other_camera = q_camids[rows] != labels.g_camids[columns]
    rows, columns = rows[other_camera], columns[other_camera]
    match_distances = distances[rows, columns]
    row_bounds = torch.arange(num_rows + 1, device=device)
    num_matches = torch.searchsorted(rows, row_bounds).diff()  # rows are sorted

    farthest = torch.full((num_rows,), -torch.inf, device=device)
    farthest.scatter_reduce_(0, rows, match_distances, reduce="amax")
    # a negative can only precede a match if it is not farther than the query's farthest match
    negative_rows, negative_columns = (distances <= farthest[:, None]).nonzero(as_tuple=True)
    is_negative = labels.g_pids[negative_columns] != q_pids[negative_rows]
    negative_rows, negative_columns = negative_rows[is_negative], negative_columns[is_negative]
    negative_distances = distances[negative_rows, negative_columns]

    bits = column_bits(num_gallery)
    keys, order = torch.sort(pack_keys(rows, match_distances, columns, bits))
    rows, columns = rows[order], columns[order]
    negative_keys = pack_keys(negative_rows, negative_distances, negative_columns, bits)
    # bin b holds the negatives between the (b-1)-th and b-th match keys of the whole chunk
    bins = torch.searchsorted(keys, negative_keys)
    num_keys = keys.shape[0]
    bin_sizes = torch.zeros(num_keys + 1, dtype=torch.int64, device=device)
    bin_sizes.index_add_(0, bins, torch.ones(1, dtype=torch.int64, device=device).expand_as(bins))
    negatives_before = bin_sizes[:num_keys].cumsum(0)
    # ... which counts the negatives of the earlier queries too: subtract them
    negatives_per_row = torch.searchsorted(negative_rows, row_bounds).diff()
    earlier_negatives = negatives_per_row.cumsum(0) - negatives_per_row
    earlier_matches = num_matches.cumsum(0) - num_matches
    positions = torch.arange(num_keys, device=device) - earlier_matches[rows]
    ranks = 1 + positions + negatives_before - earlier_negatives[rows]
    return MatchRanks(rows, columns, positions, ranks, keys, num_matches)


class RankAccumulator:
    """Sums of AP and INP, the count of valid queries and the histogram of first-match ranks."""

    def __init__(self, max_rank: int, device: torch.device) -> None:
        self.max_rank = max_rank
        self.ap_sum = 0.0
        self.inp_sum = 0.0
        self.num_valid = 0
        # bin r - 1 counts queries whose first match has rank r; the last bin, rank > max_rank
        self.first_match_counts = torch.zeros(max_rank + 1, dtype=torch.int64, device=device)

    def add(self, match_ranks: MatchRanks) -> None:
        """Add the queries of one chunk (those without a match are skipped)."""
        rows, positions, ranks = match_ranks.rows, match_ranks.positions, match_ranks.ranks
        num_matches = match_ranks.num_matches
        valid = num_matches > 0
        precision_sums = torch.zeros(num_matches.shape[0], dtype=torch.float64, device=rows.device)
        precision_sums.index_add_(0, rows, (positions + 1).double() / ranks.double())
        self.ap_sum += (precision_sums[valid] / num_matches[valid]).sum().item()
        is_last = positions == num_matches[rows] - 1
        inverse_penalty = num_matches[rows[is_last]].double() / ranks[is_last].double()
        self.inp_sum += inverse_penalty.sum().item()
        self.num_valid += int(valid.sum().item())
        first_ranks = ranks[positions == 0].clamp(max=self.max_rank + 1)
        self.first_match_counts += torch.bincount(first_ranks - 1, minlength=self.max_rank + 1)

    def cmc(self) -> np.ndarray:
        """``(max_rank,)`` float64 CMC over the valid queries added so far."""
        counts = self.first_match_counts[: self.max_rank].cumsum(0).double()
        return (counts / max(self.num_valid, 1)).cpu().numpy()


def accumulate_chunk(
    accumulator: RankAccumulator, distances: torch.Tensor, labels: Labels, start: int
) -> None:
    """Rank the matches of one chunk of queries and add them to ``accumulator``."""
    accumulator.add(rank_matches(distances, labels, start))
