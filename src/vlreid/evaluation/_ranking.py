"""The core of the ranking metrics: the rank of every match of a chunk of queries, without
sorting the gallery.

For a query, let the *matches* be the gallery items with its pid from another camera and the
*negatives* the items with another pid (items with its pid from its camera are ignored). With
ties broken by gallery index, an item precedes another when its ``(distance, gallery index)`` is
smaller, which one int64 key per item orders::

    key = query row << (32 + C)  |  order-preserving bits of the float32 distance << C  |  column

with ``C`` bits for the gallery column. The rank of the j-th match (0-based, in that order) is
``1 + j + (number of negatives preceding it)``, so only the (few) matches are sorted; the
negatives are counted, one of two ways per chunk:

- **Few candidates** (a good model): a negative farther than its row's farthest match precedes
  none of its matches. When at most ``SPARSE_SHARE`` of the chunk is no farther, one comparison
  pass finds those entries, their keys are sorted, and one ``searchsorted`` per match counts the
  negatives before it.
- **Buckets** (otherwise):

  1. Each distance of a query's row goes through a per-row map onto integer *buckets*, affine
     between the query's nearest and farthest match and clamped outside: ``(d - lo) * scale``,
     clamped, plus the row's offset, truncated. Each step is one correctly rounded (hence
     monotone) operation, so a smaller distance never lands in a later bucket. One ``bincount``
     of the whole chunk then counts the negatives of every bucket (the query's own-pid items are
     subtracted).
  2. A negative in an earlier bucket than a match precedes it; one in a later bucket does not.
     Only negatives that share a bucket with a match (a few per query, as buckets are about a
     quarter as many as gallery items) are compared exactly, by their keys, with a
     ``searchsorted`` into the sorted match keys.

  Every step is a vectorised pass over the chunk (about ten per distance; no binary search per
  gallery item), so the time hardly depends on how good the ranking is.

Both ways give the same ranks, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vlreid.evaluation._inputs import Labels

BYTES_PER_DISTANCE = 24
"""Working bytes per query x gallery entry of a chunk: the float32 distance, its scaled copy, its
int32 bucket, a boolean mask and the bucket counts (about two int64 per four entries)."""
BUCKET_INDEX_LIMIT = 2**22
"""Buckets of a whole chunk (rows x buckets per row) are at most this many, so that a bucket
index plus its fraction is held in float32 to within 0.5."""
SPARSE_SHARE = 0.09
"""When at most this share of a chunk's entries is no farther than its row's farthest match,
those entries are sorted instead of bucketed. On Market-1501-size problems on one thread,
sorting was faster at a share of 7% (0.25 s against 0.28 s) and slower at 11% (0.29 s against
0.26 s)."""
SPREAD = 16
"""Buckets per row on each side of the matches' range, for the distances clamped there: column
``c`` goes to bucket ``c % SPREAD`` of its side, so that ``bincount`` does not increment one
counter for most of the gallery (a chain of dependent increments, twice as slow)."""


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


def column_bits(num_gallery: int) -> int:
    """Bits of a key that hold the gallery column."""
    return max(1, (num_gallery - 1).bit_length())


def buckets_per_row(num_gallery: int) -> int:
    """Buckets of the matches' range in one row: about a quarter of the gallery size."""
    return max(16, num_gallery // 4)


def row_width(num_gallery: int) -> int:
    """Buckets of one row: the matches' range and the ``SPREAD`` below and above it."""
    return buckets_per_row(num_gallery) + 2 * SPREAD


def rows_per_chunk(num_gallery: int, memory_budget: int) -> int:
    """Query rows per chunk: within ``memory_budget`` bytes, the key's row bits and the bucket
    index limit."""
    by_memory = memory_budget // (BYTES_PER_DISTANCE * num_gallery)
    by_key = 2 ** (31 - column_bits(num_gallery))
    by_buckets = BUCKET_INDEX_LIMIT // row_width(num_gallery)
    return int(max(1, min(by_memory, by_key, by_buckets)))


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


class Workspace:
    """Buffers of one chunk's passes, allocated once per evaluation and reused by every chunk
    (fresh buffers per chunk cost more in page faults than the passes themselves)."""

    def __init__(self, num_rows: int, num_gallery: int, device: torch.device) -> None:
        size = num_rows * num_gallery
        self.scaled = torch.empty(size, dtype=torch.float32, device=device)
        self.buckets = torch.empty(size, dtype=torch.int32, device=device)
        self.hot = torch.empty(size, dtype=torch.bool, device=device)
        spread = torch.arange(num_gallery, device=device) % SPREAD
        self.floor = (spread - SPREAD).float()
        """``(G,)`` the scaled distance of column ``c`` is at least ``c % SPREAD - SPREAD``."""
        self.cap = (spread + buckets_per_row(num_gallery)).float()
        """``(G,)`` ... and at most ``K + c % SPREAD``."""

    def views(self, num_rows: int, num_gallery: int) -> tuple[torch.Tensor, ...]:
        """``(B, G)`` float32, ``(B * G,)`` int32 and ``(B * G,)`` bool views of the buffers."""
        size = num_rows * num_gallery
        if size > self.scaled.shape[0]:
            raise ValueError(f"chunk of {size} entries exceeds the workspace")
        scaled = self.scaled[:size].view(num_rows, num_gallery)
        return scaled, self.buckets[:size], self.hot[:size]


def _own_pid_items(
    labels: Labels, q_pids: torch.Tensor, num_rows: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows, columns)`` of every gallery item with its query's pid, by row."""
    device = q_pids.device
    first = torch.searchsorted(labels.sorted_g_pids, q_pids)
    counts = torch.searchsorted(labels.sorted_g_pids, q_pids, right=True) - first
    rows = torch.repeat_interleave(torch.arange(num_rows, device=device), counts)
    offsets = torch.arange(rows.shape[0], device=device) - (counts.cumsum(0) - counts)[rows]
    return rows, labels.gallery_by_pid[first[rows] + offsets]


def _hot_items(mask: torch.Tensor, num_gallery: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows, columns)`` of the true entries of a flattened ``(B, G)`` mask, by row."""
    if mask.device.type == "cpu":  # numpy's scan and division are several times torch's here
        flat = np.flatnonzero(mask.numpy())
        rows = flat // num_gallery
        return torch.from_numpy(rows), torch.from_numpy(flat - rows * num_gallery)
    flat = mask.nonzero().squeeze(1)
    rows = flat // num_gallery
    return rows, flat - rows * num_gallery


def _bucket_ranges(
    match_distances: torch.Tensor,
    num_matches: torch.Tensor,
    first_match: torch.Tensor,
    num_buckets: int,
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Per row, the ``(B, 1)`` ``low`` and ``scale`` that map the matches onto [0, K - 1].

    Any finite ``low`` and positive ``scale`` keep the ranks exact (both are finite and nonzero
    in float32, so no NaN can arise); these make the buckets fine where the matches are. The
    flag says whether every match is sure to land in [0, K - 1] (no infinite match distance or
    range), which clamping by column (not monotone) needs.
    """
    num_rows = num_matches.shape[0]
    has_match = num_matches > 0
    low = torch.zeros(num_rows, dtype=torch.float64, device=num_matches.device)
    high = torch.ones_like(low)
    nearest, farthest = first_match[has_match], first_match[has_match] + num_matches[has_match] - 1
    low[has_match] = match_distances[nearest].double()
    high[has_match] = match_distances[farthest].double()
    in_range = bool(torch.isfinite((high - low).float()).all())
    low, high = low.clamp(-3e38, 3e38), high.clamp(-3e38, 3e38)
    span = high - low
    scale = torch.where(span > 0, (num_buckets - 1) / span, 1.0).clamp(1.2e-38, 1e30)
    return low.float()[:, None], scale.float()[:, None], in_range


def _candidates(
    distances: torch.Tensor, farthest: torch.Tensor, workspace: Workspace
) -> torch.Tensor | None:
    """Flat indices of the entries of each row no farther than its farthest match, or ``None``
    when they are more than ``SPARSE_SHARE`` of the chunk (then the buckets are cheaper)."""
    num_rows, num_gallery = distances.shape
    _, _, mask = workspace.views(num_rows, num_gallery)
    limit = SPARSE_SHARE * num_rows * num_gallery
    if distances.device.type == "cpu":  # numpy's comparison is several times torch's here
        flags = mask.numpy().reshape(num_rows, num_gallery)
        np.less_equal(distances.numpy(), farthest.numpy()[:, None], out=flags)
        if np.count_nonzero(flags) > limit:
            return None
        return torch.from_numpy(np.flatnonzero(flags))
    flags = mask.view(num_rows, num_gallery)
    torch.le(distances, farthest[:, None], out=flags)
    if int(torch.count_nonzero(flags)) > limit:
        return None
    return flags.view(-1).nonzero().squeeze(1)


def _negatives_before_sparse(
    distances: torch.Tensor,
    candidates: torch.Tensor,
    labels: Labels,
    q_pids: torch.Tensor,
    match_keys: torch.Tensor,
    match_rows: torch.Tensor,
) -> torch.Tensor:
    """Per match, the negatives of its row that precede it, from the candidate entries (every
    entry that may precede a match): their keys sorted, and a ``searchsorted`` per match."""
    num_gallery = distances.shape[1]
    candidates = candidates.to(distances.device)
    # index_select and masked_select: several times faster than indexing on the CPU
    rows = candidates // num_gallery
    columns = candidates - rows * num_gallery
    is_negative = labels.g_pids.index_select(0, columns) != q_pids.index_select(0, rows)
    rows, columns = rows.masked_select(is_negative), columns.masked_select(is_negative)
    negative_distances = distances.view(-1).index_select(0, candidates.masked_select(is_negative))
    bits = column_bits(num_gallery)
    keys, _ = torch.sort(pack_keys(rows, negative_distances, columns, bits))
    row_starts = match_rows << (32 + bits)
    return torch.searchsorted(keys, match_keys) - torch.searchsorted(keys, row_starts)


def rank_matches(
    distances: torch.Tensor, labels: Labels, start: int, workspace: Workspace | None = None
) -> MatchRanks:
    """Rank every match of the queries ``start .. start + B - 1``.

    Args:
        distances: ``(B, G)`` float32 distances of the chunk's queries to the whole gallery.
        labels: Labels of all queries and the gallery.
        start: Index of the chunk's first query.
        workspace: Buffers for at least ``B x G`` entries (allocated here when ``None``).

    Returns:
        The ranks of the chunk's matches.
    """
    distances = distances.contiguous()
    num_rows, num_gallery = distances.shape
    device = distances.device
    if workspace is None:
        workspace = Workspace(num_rows, num_gallery, device)
    q_pids = labels.q_pids[start : start + num_rows]
    q_camids = labels.q_camids[start : start + num_rows]
    own_rows, own_columns = _own_pid_items(labels, q_pids, num_rows)
    other_camera = q_camids[own_rows] != labels.g_camids[own_columns]
    rows, columns = own_rows[other_camera], own_columns[other_camera]
    bits = column_bits(num_gallery)
    keys, order = torch.sort(pack_keys(rows, distances[rows, columns], columns, bits))
    rows, columns = rows[order], columns[order]
    match_distances = distances[rows, columns]
    num_matches = torch.searchsorted(rows, torch.arange(num_rows + 1, device=device)).diff()
    first_match = num_matches.cumsum(0) - num_matches
    positions = torch.arange(rows.shape[0], device=device) - first_match[rows]

    # a negative farther than a row's farthest match precedes none of its matches: when few
    # entries are no farther, sort those (a good model, where most of the gallery lies beyond)
    has_match = num_matches > 0
    farthest = torch.full((num_rows,), -float("inf"), device=device)
    farthest[has_match] = match_distances[(first_match + num_matches - 1)[has_match]]
    candidates = _candidates(distances, farthest, workspace)
    if candidates is not None:
        before = _negatives_before_sparse(distances, candidates, labels, q_pids, keys, rows)
        return MatchRanks(rows, columns, positions, 1 + positions + before, keys, num_matches)

    # 1. bucket = offset of the row + SPREAD + 0.5 + (d - low) * scale, floored, where the
    # matches span [0, K - 1] and the rest is clamped (per column) to the SPREAD on either side
    num_buckets, width = buckets_per_row(num_gallery), row_width(num_gallery)
    low, scale, in_range = _bucket_ranges(match_distances, num_matches, first_match, num_buckets)
    row_offsets = torch.arange(num_rows, device=device) * width
    scaled, buckets, hot = workspace.views(num_rows, num_gallery)
    torch.sub(distances, low, out=scaled).mul_(scale)
    if in_range:
        torch.clamp(scaled, min=workspace.floor, max=workspace.cap, out=scaled)
    else:  # a match may be clamped: one bucket on either side, so that the map stays monotone
        scaled.clamp_(-1, num_buckets)
    scaled.add_((row_offsets + SPREAD).float()[:, None] + 0.5)
    buckets.view(num_rows, num_gallery).copy_(scaled)  # truncates: floor of a value >= 0
    counts = torch.bincount(buckets, minlength=num_rows * width)
    own_buckets = buckets[own_rows * num_gallery + own_columns].long()
    counts.index_add_(0, own_buckets, torch.full_like(own_buckets, -1))  # negatives only
    cumulative = counts.cumsum(0) - counts  # exclusive
    match_buckets = buckets[rows * num_gallery + columns].long()  # non-decreasing
    before_bucket = cumulative[match_buckets] - cumulative[row_offsets[rows]]

    # 2. the negatives in the bucket of a match, against the match keys
    is_hot_bucket = torch.zeros(counts.shape[0], dtype=torch.bool, device=device)
    is_hot_bucket[match_buckets] = True
    torch.index_select(is_hot_bucket, 0, buckets, out=hot)
    hot_rows, hot_columns = (items.to(device) for items in _hot_items(hot, num_gallery))
    is_negative = labels.g_pids[hot_columns] != q_pids[hot_rows]
    hot_rows, hot_columns = hot_rows[is_negative], hot_columns[is_negative]
    hot_keys = pack_keys(hot_rows, distances[hot_rows, hot_columns], hot_columns, bits)
    # such a negative precedes the matches of its bucket from the first of larger key on
    first_after = torch.searchsorted(keys, hot_keys)
    hot_buckets = buckets[hot_rows * num_gallery + hot_columns].long()
    bucket_end = torch.searchsorted(match_buckets, hot_buckets, right=True)
    steps = torch.zeros(keys.shape[0] + 1, dtype=torch.int64, device=device)
    steps.index_add_(0, first_after, torch.ones_like(first_after))
    steps.index_add_(0, bucket_end, torch.full_like(bucket_end, -1))
    within_bucket = steps.cumsum(0)[:-1]
    ranks = 1 + positions + before_bucket + within_bucket
    return MatchRanks(rows, columns, positions, ranks, keys, num_matches)
