"""CUHK03 single-gallery-shot and VehicleID protocols against naive per-query loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluation_reference import make_problem, reference_market, reference_single_shot_cmc
from vlreid.evaluation.protocols import (
    evaluate_single_gallery_shot,
    evaluate_vehicleid,
    one_per_identity,
    vehicleid_gallery_draws,
)


@pytest.fixture(autouse=True)
def one_thread():  # type: ignore[no-untyped-def]
    """Small tensors on a shared, busy machine run faster (and steadier) on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(("seed", "ties"), [(0, False), (1, True)])
def test_single_gallery_shot_equals_reference(seed: int, ties: bool) -> None:
    problem = make_problem(np.random.default_rng(seed), 30, 150, num_ids=10, ties=ties)
    priorities = np.random.default_rng(11).random((4, 150))
    expected_cmc = reference_single_shot_cmc(
        problem.distmat, *problem.labels(), priorities, max_rank=20
    )
    mAP, _, mINP, num_valid = reference_market(problem.distmat, *problem.labels(), max_rank=20)
    result = evaluate_single_gallery_shot(
        problem.distmat, *problem.labels(), max_rank=20, num_repeats=4, seed=11, memory_budget=1
    )
    np.testing.assert_allclose(result.cmc, expected_cmc, rtol=0, atol=1e-6)
    assert result.mAP == pytest.approx(mAP, abs=1e-6)
    assert result.mINP == pytest.approx(mINP, abs=1e-6)
    assert result.num_valid_queries == num_valid
    full_gallery_cmc = reference_market(problem.distmat, *problem.labels(), max_rank=20)[1]
    assert not np.allclose(result.cmc, full_gallery_cmc)


def test_single_shot_depends_on_seed_only() -> None:
    problem = make_problem(np.random.default_rng(2), 30, 150, num_ids=10)
    run = [
        evaluate_single_gallery_shot(problem.distmat, *problem.labels(), seed=seed).cmc
        for seed in (0, 0, 1)
    ]
    np.testing.assert_array_equal(run[0], run[1])
    assert not np.array_equal(run[0], run[2])


def test_one_per_identity_draws_every_identity_uniformly() -> None:
    pids = np.array([5, 3, 5, 5, 3, 9])
    rng = np.random.default_rng(0)
    counts = np.zeros(len(pids))
    for _ in range(3000):
        chosen = one_per_identity(pids, rng.random(len(pids)))
        assert sorted(pids[chosen].tolist()) == [3, 5, 9]
        counts[chosen] += 1
    # pid 5 has 3 images (about 1000 draws each), pid 3 has 2 (about 1500), pid 9 one (3000)
    np.testing.assert_allclose(counts, [1000, 1500, 1000, 1000, 1500, 3000], rtol=0.1)


def test_vehicleid_equals_mean_of_reference_trials() -> None:
    rng = np.random.default_rng(3)
    num_images, num_ids = 120, 25
    pids = rng.integers(0, num_ids, num_images)
    centres = rng.normal(size=(num_ids, 6))
    features = (centres[pids] + 1.2 * rng.normal(size=(num_images, 6))).astype(np.float32)
    # the manifest's own split (query first, then gallery) must not matter: only the pool does
    result = evaluate_vehicleid(
        torch.from_numpy(features[:80]), features[80:], pids[:80], pids[80:], num_trials=3, seed=4
    )
    draws = vehicleid_gallery_draws(pids, 3, seed=4)
    assert len({tuple(draw) for draw in draws}) == 3
    expected = []
    for gallery in draws:
        assert sorted(pids[gallery].tolist()) == sorted(set(pids.tolist()))
        query = np.setdiff1d(np.arange(num_images), gallery)
        distmat = ((features[query][:, None] - features[gallery][None]) ** 2).sum(-1)
        cameras = (np.zeros(len(query)), np.ones(len(gallery)))
        expected.append(reference_market(distmat, pids[query], pids[gallery], *cameras))
    assert result.mAP == pytest.approx(np.mean([trial[0] for trial in expected]), abs=1e-6)
    assert result.mINP == pytest.approx(np.mean([trial[2] for trial in expected]), abs=1e-6)
    expected_cmc = np.mean([trial[1] for trial in expected], axis=0)
    np.testing.assert_allclose(result.cmc, expected_cmc, rtol=0, atol=1e-6)
    assert result.num_valid_queries == num_images - len(set(pids.tolist()))
