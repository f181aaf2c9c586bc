"""The P x K identity sampler of metric-learning ReID training.

Every batch holds P distinct identities with K images each, so that a batch-hard triplet loss
finds positives and negatives in it (Hermans et al., "In Defense of the Triplet Loss for Person
Re-Identification", 2017). The semantics follow torchreid's and CLIP-ReID's
``RandomIdentitySampler``: each identity's images are shuffled and cut into chunks of K (an
identity with fewer than K images is first sampled to K with replacement; a final partial chunk is
dropped), and each batch takes the next chunk of P identities.

Two differences, both so that an epoch has a known length and visits nearly every image:

* The epoch has exactly ``sum_i max(n_i, K) // K // P`` batches (the figure torchreid's
  ``__len__`` estimates; torchreid itself stops early, as soon as fewer than P identities have a
  chunk left). The P identities of a batch are drawn without replacement with probability
  proportional to their remaining chunks, so large identities are spread over the epoch rather
  than left over at its end; when fewer than P identities have chunks left, the batch is completed
  with fresh chunks of other identities.
* Randomness comes from the sampler's own :class:`torch.Generator`, seeded with
  ``(seed, epoch)``: the same seed and epoch give the same order on every rank and after a resume.

With ``num_replicas > 1`` all ranks build the same global list of batches and rank ``r`` keeps
batches ``r, r + num_replicas, ...`` (the tail that does not divide evenly is dropped), so ranks
see disjoint, whole P x K batches. Do not let another wrapper (e.g. accelerate's
``prepare``) shard the loader again in that case; alternatively keep ``num_replicas=1`` and let
accelerate deal out whole batches round-robin, which is equivalent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from vlreid.errors import ReIDError


class IdentitySampler(Sampler[int]):
    """Yields dataset indices in consecutive P x K batches.

    Use with ``DataLoader(batch_size=batch_size, drop_last=True, sampler=sampler)``.

    Args:
        pids: Identity (pid or label) of each dataset index.
        batch_size: Images per batch, ``P * K``.
        num_instances: K, images per identity in a batch.
        seed: Seed of the sampler's generator (combined with the epoch).
        num_replicas: Number of data-parallel ranks.
        rank: This process's rank in ``[0, num_replicas)``.

    Raises:
        ReIDError: ``batch_size`` is not a multiple of ``num_instances``, there are fewer than P
            identities, or the epoch would have no batch for a rank.
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
        self._chunks_per_pid = [
            max(len(indices), num_instances) // num_instances for indices in self._indices
        ]
        total_batches = sum(self._chunks_per_pid) // self.num_identities
        self.num_batches = total_batches // num_replicas
        if self.num_batches == 0:
            raise ReIDError(
                f"{sum(self._chunks_per_pid)} chunks of K={num_instances} images give no full "
                f"batch per rank for batch size {batch_size} on {num_replicas} rank(s)"
            )

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch: same seed and epoch give the same order, a new epoch a new one."""
        self.epoch = epoch

    def __len__(self) -> int:
        """Number of indices this rank yields in one epoch (``num_batches * batch_size``)."""
        return self.num_batches * self.batch_size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator()
        # Distinct (seed, epoch) pairs give distinct streams; all ranks share it.
        generator.manual_seed(self.seed * 1_000_003 + self.epoch)
        batches = self._epoch_batches(generator)
        for batch in batches[self.rank :: self.num_replicas][: self.num_batches]:
            yield from batch.tolist()

    def _shuffled_chunks(self, position: int, generator: torch.Generator) -> list[torch.Tensor]:
        indices = self._indices[position]
        if len(indices) < self.num_instances:
            draws = torch.randint(0, len(indices), (self.num_instances,), generator=generator)
            indices = indices[draws]
        else:
            indices = indices[torch.randperm(len(indices), generator=generator)]
        count = len(indices) // self.num_instances
        return list(indices[: count * self.num_instances].view(count, self.num_instances))

    def _epoch_batches(self, generator: torch.Generator) -> list[torch.Tensor]:
        chunks = [self._shuffled_chunks(p, generator) for p in range(len(self._pids))]
        remaining = torch.tensor([len(c) for c in chunks], dtype=torch.float64)
        total_batches = self.num_batches * self.num_replicas
        batches: list[torch.Tensor] = []
        for _ in range(total_batches):
            available = int((remaining > 0).sum())
            if available >= self.num_identities:
                chosen = torch.multinomial(
                    remaining, self.num_identities, replacement=False, generator=generator
                ).tolist()
            else:
                # Top up with identities that have used all their chunks this epoch.
                chosen = torch.nonzero(remaining > 0).flatten().tolist()
                exhausted = torch.nonzero(remaining == 0).flatten()
                order = exhausted[torch.randperm(len(exhausted), generator=generator)]
                for position in order[: self.num_identities - len(chosen)].tolist():
                    chunks[position] = self._shuffled_chunks(position, generator)
                    remaining[position] = len(chunks[position])
                    chosen.append(position)
            batch = []
            for position in chosen:
                batch.append(chunks[position].pop())
                remaining[position] -= 1
            batches.append(torch.cat(batch))
        return batches
