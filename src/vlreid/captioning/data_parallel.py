"""Data-parallel captioning: which slice of the images this process captions.

Under ``torchrun`` or ``accelerate launch`` (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` in the
environment) each process loads its own model and captions a disjoint slice; a gloo process
group (CPU, works beside NCCL jobs) is used only to agree on errors and to sum the summary.
Cluster job arrays add ``--num-shards N --shard-index I``: worker ``I * world_size + rank`` of
``N * world_size`` takes every ``(N * world_size)``-th image of the sorted split.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from vlreid.errors import ReIDError


@dataclass
class DistributedContext:
    """This process's place in a data-parallel run.

    Attributes:
        rank: Global rank (0 when not launched by torchrun / accelerate).
        world_size: Number of processes.
        local_rank: Rank on this node (picks the GPU).
        owns_group: Whether this context created the process group (and destroys it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False

    @classmethod
    def from_environment(cls) -> DistributedContext:
        """Read the launcher's environment; start a gloo group if there are several processes."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        owns_group = False
        if world_size > 1 and dist.is_available() and not dist.is_initialized():
            dist.init_process_group("gloo", rank=rank, world_size=world_size)
            owns_group = True
        return cls(rank, world_size, local_rank, owns_group)

    @property
    def is_distributed(self) -> bool:
        """Whether several processes take part."""
        return self.world_size > 1 and dist.is_available() and dist.is_initialized()

    def worker(self, num_shards: int, shard_index: int) -> tuple[int, int]:
        """``(worker index, number of workers)`` over all jobs and all processes.

        Raises:
            ReIDError: ``shard_index`` outside ``0 .. num_shards - 1``.
        """
        if num_shards < 1 or not 0 <= shard_index < num_shards:
            raise ReIDError(
                f"--shard-index {shard_index} is outside 0..{num_shards - 1} (--num-shards "
                f"{num_shards})"
            )
        return shard_index * self.world_size + self.rank, num_shards * self.world_size

    def check_all(self, error: ReIDError | None) -> None:
        """Raise on every process if any process failed (so that none waits forever).

        Raises:
            ReIDError: This process's own error, or a pointer to the failing rank.
        """
        failed = torch.tensor([0 if error is None else 1], dtype=torch.int64)
        if self.is_distributed:
            dist.all_reduce(failed, op=dist.ReduceOp.MAX)
        if error is not None:
            raise error
        if int(failed.item()):
            raise ReIDError(f"rank {self.rank}: another rank failed (see its error)")

    def reduce(self, values: list[float], maximum: bool = False) -> list[float]:
        """Element-wise sum (or maximum) of ``values`` over all processes."""
        if not self.is_distributed:
            return values
        tensor = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX if maximum else dist.ReduceOp.SUM)
        return tensor.tolist()

    def barrier(self) -> None:
        """Wait for every process."""
        if self.is_distributed:
            dist.barrier()

    def close(self) -> None:
        """Destroy the process group if this context created it."""
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()
