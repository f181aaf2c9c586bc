"""The P x K identity sampler of metric-learning ReID training.

Every batch holds P distinct identities with K images each, so that a batch-hard triplet loss
finds positives and negatives in it (Hermans et al., "In Defense of the Triplet Loss for Person
Re-Identification", 2017). An epoch is built as CLIP-ReID's ``RandomIdentitySampler``
(``datasets/sampler.py``, also torchreid's) builds it:

1. each identity's images are shuffled and cut into chunks of K (an identity with fewer than K
   images is first drawn to K with replacement; a final partial chunk is dropped);
2. while at least P identities have a chunk left, a batch takes P of them uniformly without
   replacement and one chunk of each; identities whose chunks are used up leave the draw.

The chunks of the last fewer-than-P identities are left over, so the number of batches varies
a little from epoch to epoch, between ``n_ids // P`` and ``sum_i max(n_i, K) // K // P``. At
P x K = 16 x 4 the official loop and this sampler both give 183 or 184 batches on Market-1501
(751 identities; 182-185 in 1,000 epochs) and 472-475 on MSMT17 train+val (1,041 identities;
470-477), where the sum of chunks would give 185 and 485 (``tests/test_data_samplers.py``).
``len(sampler)`` is the length of the selected epoch, which it draws (once per epoch) to know.

Only the random streams differ from the official sampler's (Python's ``random`` and NumPy's
global state there): ours come from the sampler's own :class:`torch.Generator`, seeded with
``(seed, epoch)``, so the same seed and epoch give the same batches on every rank and after a
resume.

With ``num_replicas > 1`` all ranks draw the same global list of batches and rank ``r`` keeps
batches ``r, r + num_replicas, ...`` (the tail that does not divide evenly is dropped), so ranks
see disjoint, whole P x K batches and the same number of them. Do not let another wrapper (e.g.
accelerate's ``prepare``) shard the loader again in that case; alternatively keep
``num_replicas=1`` and let accelerate deal out whole batches round-robin, which is equivalent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from vlreid.errors import ReIDError


class IdentitySampler(Sampler[int]):
    """Yields dataset indices in consecutive P x K batches.

    Use with ``DataLoader(batch_size=batch_size, drop_last=True, sampler=sampler)``, and call
    :meth:`set_epoch` before each epoch (also before ``len``: epochs differ in length).

    Args:
        pids: Identity (pid or label) of each dataset index.
        batch_size: Images per batch, ``P * K``.
        num_instances: K, images per identity in a batch.
        seed: Seed of the sampler's generator (combined with the epoch).
        num_replicas: Number of data-parallel ranks.
        rank: This process's rank in ``[0, num_replicas)``.

    Raises:
        ReIDError: ``batch_size`` is not a multiple of ``num_instances``, there are fewer than P
            identities, or even a full epoch (``sum_i max(n_i, K) // K // P`` batches) has
            fewer batches than ranks. ``len`` and iteration raise it for an epoch whose draw
            leaves a rank without a batch.
    """

    def __init__(
        self,
        pids: Sequence[int],
        batch_size: int,
        num_instances: int,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if num_instances < 1 or batch_size < num_instances or batch_size % num_instances:
            raise ReIDError(
                f"batch size {batch_size} must be a positive multiple of num_instances "
                f"{num_instances} (P identities x K images)"
            )
        if not 0 <= rank < num_replicas:
            raise ReIDError(f"rank {rank} is outside [0, num_replicas={num_replicas})")
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.num_identities = batch_size // num_instances
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch = 0

        indices_by_pid: dict[int, list[int]] = {}
        for index, pid in enumerate(pids):
            indices_by_pid.setdefault(int(pid), []).append(index)
        self._pids = sorted(indices_by_pid)
        self._indices = [torch.tensor(indices_by_pid[pid]) for pid in self._pids]
        if len(self._pids) < self.num_identities:
            raise ReIDError(
                f"{len(self._pids)} identities cannot fill batches of P={self.num_identities} "
                f"distinct identities (batch size {batch_size} / num_instances {num_instances})"
            )
        chunks = sum(max(len(indices), num_instances) // num_instances for indices in self._indices)
        if chunks // self.num_identities < num_replicas:
            raise ReIDError(
                f"{chunks} chunks of K={num_instances} images give no full batch per rank for "
                f"batch size {batch_size} on {num_replicas} rank(s)"
            )
        self._drawn: tuple[int, list[torch.Tensor]] | None = None  # (epoch, its global batches)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch: same seed and epoch give the same order, a new epoch a new one."""
        self.epoch = epoch

    def __len__(self) -> int:
        """Number of indices this rank yields in the selected epoch (whole batches)."""
        return len(self._epoch_batches()) // self.num_replicas * self.batch_size

    def __iter__(self) -> Iterator[int]:
        batches = self._epoch_batches()
        count = len(batches) // self.num_replicas
        for batch in batches[self.rank :: self.num_replicas][:count]:
            yield from batch.tolist()

    def _epoch_batches(self) -> list[torch.Tensor]:
        """The global ``(P * K,)`` batches of the selected epoch, drawn once per epoch."""
        if self._drawn is None or self._drawn[0] != self.epoch:
            generator = torch.Generator()
            # Distinct (seed, epoch) pairs give distinct streams; all ranks share it.
            generator.manual_seed(self.seed * 1_000_003 + self.epoch)
            batches = self._draw_batches(generator)
            if len(batches) < self.num_replicas:
                raise ReIDError(
                    f"epoch {self.epoch} of the P x K sampler drew {len(batches)} batch(es) of "
                    f"P={self.num_identities} x K={self.num_instances}, fewer than the "
                    f"{self.num_replicas} ranks: lower the batch size or the number of processes"
                )
            self._drawn = (self.epoch, batches)
        return self._drawn[1]

    def _shuffled_chunks(self, position: int, generator: torch.Generator) -> list[torch.Tensor]:
        indices = self._indices[position]
        if len(indices) < self.num_instances:
            draws = torch.randint(0, len(indices), (self.num_instances,), generator=generator)
            indices = indices[draws]
        else:
            indices = indices[torch.randperm(len(indices), generator=generator)]
        count = len(indices) // self.num_instances
        return list(indices[: count * self.num_instances].view(count, self.num_instances))

    def _draw_batches(self, generator: torch.Generator) -> list[torch.Tensor]:
        chunks = [self._shuffled_chunks(p, generator) for p in range(len(self._pids))]
        available = list(range(len(self._pids)))  # identities with a chunk left
        batches: list[torch.Tensor] = []
        while len(available) >= self.num_identities:
            draw = torch.randperm(len(available), generator=generator)[: self.num_identities]
            chosen = [available[i] for i in draw.tolist()]
            batches.append(torch.cat([chunks[position].pop() for position in chosen]))
            available = [position for position in available if chunks[position]]
        return batches
