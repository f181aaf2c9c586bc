"""Sums of a whole evaluation over its chunks of queries: AP, INP and first-match ranks."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from vlreid.evaluation._inputs import Labels
from vlreid.evaluation._ranking import MatchRanks, Workspace, rank_matches


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


class ChunkRanker:
    """Ranks chunks of queries into an accumulator, ``workers`` parts at a time on the CPU.

    Each worker thread has its own workspace (the ranking's numpy and torch passes release the
    GIL). The parts are added to the accumulator in query order, so the sums are those of one
    thread to the last bit. Use as a context manager (it owns a thread pool when ``workers > 1``).

    Args:
        accumulator: Where the ranks go.
        labels: Labels of all queries and the gallery.
        part_rows: Query rows per part (the size of each workspace).
        num_gallery: Gallery size.
        device: Where the distances are.
        workers: Parts ranked at once (1 on CUDA, where the device is the parallel part).
    """

    def __init__(
        self,
        accumulator: RankAccumulator,
        labels: Labels,
        part_rows: int,
        num_gallery: int,
        device: torch.device,
        workers: int = 1,
    ) -> None:
        self.accumulator, self.labels, self.part_rows = accumulator, labels, part_rows
        self.workspaces = [Workspace(part_rows, num_gallery, device) for _ in range(workers)]
        self.pool = ThreadPoolExecutor(workers) if workers > 1 else None

    def __enter__(self) -> ChunkRanker:
        return self

    def __exit__(self, *_: object) -> None:
        if self.pool is not None:
            self.pool.shutdown()

    def rank(self, distances: torch.Tensor, start: int) -> None:
        """Rank the ``(B, G)`` distances of the queries ``start .. start + B - 1``."""
        parts = [
            (distances[first : first + self.part_rows], start + first)
            for first in range(0, distances.shape[0], self.part_rows)
        ]
        workers = len(self.workspaces)
        for batch_start in range(0, len(parts), workers):
            batch = zip(parts[batch_start : batch_start + workers], self.workspaces, strict=False)
            jobs = [(part, first, workspace) for (part, first), workspace in batch]
            if self.pool is None:
                results = [rank_matches(part, self.labels, *rest) for part, *rest in jobs]
            else:
                results = list(
                    self.pool.map(lambda job: rank_matches(job[0], self.labels, *job[1:]), jobs)
                )
            for match_ranks in results:
                self.accumulator.add(match_ranks)


def ranking_workers(device: torch.device) -> int:
    """Parts ranked at once: torch's thread count on the CPU, one elsewhere."""
    return max(1, torch.get_num_threads()) if device.type == "cpu" else 1
