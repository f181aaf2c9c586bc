"""The P x K identity sampler: batch composition, determinism, DDP shards, exact length."""

from __future__ import annotations

from collections import Counter

import pytest

from vlreid.datasets.samplers import IdentitySampler
from vlreid.errors import ReIDError


def _pids(images_per_id: dict[int, int]) -> list[int]:
    return [pid for pid, count in images_per_id.items() for _ in range(count)]


# Skewed on purpose: one large identity, small identities below K, uneven remainders.
SKEWED = {0: 30, 1: 2, 2: 5, 3: 9, 4: 4, 5: 1, 6: 13, 7: 7, 8: 6, 9: 3}


def _batches(sampler: IdentitySampler) -> list[list[int]]:
    indices = list(sampler)
    size = sampler.batch_size
    return [indices[start : start + size] for start in range(0, len(indices), size)]


def test_every_batch_has_p_identities_with_k_images_each() -> None:
    pids = _pids(SKEWED)
    sampler = IdentitySampler(pids, batch_size=12, num_instances=3, seed=1)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        for batch in _batches(sampler):
            assert len(batch) == 12
            counts = Counter(pids[index] for index in batch)
            assert len(counts) == 4
            assert set(counts.values()) == {3}
            # Each identity's K images are consecutive (one chunk), as the triplet loss expects.
            chunks = [batch[start : start + 3] for start in range(0, 12, 3)]
            assert all(len({pids[index] for index in chunk}) == 1 for chunk in chunks)


def test_small_identities_are_sampled_with_replacement() -> None:
    pids = _pids(SKEWED)
    sampler = IdentitySampler(pids, batch_size=8, num_instances=4, seed=0)
    small_indices = {5: {pids.index(5)}, 1: {i for i, pid in enumerate(pids) if pid == 1}}
    seen_small = Counter()
    for epoch in range(5):
        sampler.set_epoch(epoch)
        for batch in _batches(sampler):
            for start in range(0, 8, 4):
                chunk = batch[start : start + 4]
                pid = pids[chunk[0]]
                if pid in small_indices:
                    seen_small[pid] += 1
                    assert set(chunk) <= small_indices[pid]
                    assert len(set(chunk)) < 4  # fewer than K images: repeats
    assert seen_small[5] > 0 and seen_small[1] > 0


def test_length_is_exact_and_follows_the_chunk_count() -> None:
    pids = _pids(SKEWED)
    for batch_size, k in [(8, 4), (12, 3), (6, 2), (20, 4)]:
        sampler = IdentitySampler(pids, batch_size=batch_size, num_instances=k, seed=3)
        chunks = sum(max(count, k) // k for count in SKEWED.values())
        expected = chunks // (batch_size // k) * batch_size
        assert len(sampler) == expected
        for epoch in range(4):
            sampler.set_epoch(epoch)
            assert len(list(sampler)) == expected


def test_set_epoch_is_deterministic_and_changes_the_order() -> None:
    pids = _pids(SKEWED)
    first = IdentitySampler(pids, batch_size=8, num_instances=4, seed=7)
    second = IdentitySampler(pids, batch_size=8, num_instances=4, seed=7)
    first.set_epoch(2)
    second.set_epoch(2)
    assert list(first) == list(second)
    assert list(first) == list(first)  # iterating again replays the epoch
    second.set_epoch(3)
    assert list(first) != list(second)
    other_seed = IdentitySampler(pids, batch_size=8, num_instances=4, seed=8)
    other_seed.set_epoch(2)
    assert list(first) != list(other_seed)


def test_ddp_ranks_get_disjoint_whole_batches_of_the_global_order() -> None:
    pids = _pids({pid: 8 for pid in range(12)})
    single = IdentitySampler(pids, batch_size=8, num_instances=4, seed=5)
    ranks = [
        IdentitySampler(pids, batch_size=8, num_instances=4, seed=5, num_replicas=3, rank=rank)
        for rank in range(3)
    ]
    for epoch in range(2):
        single.set_epoch(epoch)
        global_batches = _batches(single)
        per_rank = []
        for rank, sampler in enumerate(ranks):
            sampler.set_epoch(epoch)
            batches = _batches(sampler)
            assert len(sampler) == len(global_batches) // 3 * 8
            assert batches == global_batches[rank::3][: len(global_batches) // 3]
            per_rank.append({tuple(batch) for batch in batches})
        assert not per_rank[0] & per_rank[1] and not per_rank[1] & per_rank[2]
        assert not per_rank[0] & per_rank[2]


def test_balanced_identities_visit_most_images_per_epoch() -> None:
    pids = _pids({pid: 8 for pid in range(40)})
    sampler = IdentitySampler(pids, batch_size=16, num_instances=4, seed=0)
    visited = set(sampler)
    # 80 chunks fill 20 batches; only a top-up at the very end may repeat an identity.
    assert len(visited) >= 0.9 * len(pids)


@pytest.mark.parametrize(
    ("pids", "batch_size", "k", "replicas", "message"),
    [
        (list(range(10)), 10, 4, 1, "multiple of num_instances"),
        (_pids({0: 8, 1: 8}), 12, 4, 1, "2 identities cannot fill"),
        (_pids({0: 4, 1: 4, 2: 4}), 8, 4, 4, "no full batch per rank"),
    ],
)
def test_bad_options_raise_user_errors(
    pids: list[int], batch_size: int, k: int, replicas: int, message: str
) -> None:
    with pytest.raises(ReIDError, match=message):
        IdentitySampler(pids, batch_size=batch_size, num_instances=k, num_replicas=replicas)
