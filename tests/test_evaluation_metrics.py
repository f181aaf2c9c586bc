"""Market-protocol metrics against the naive per-query loop, hand-worked cases and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluation_reference import make_feature_problem, make_problem, reference_market
from vlreid.errors import ReIDError
from vlreid.evaluation import _ranking, metrics
from vlreid.evaluation._accumulator import ChunkRanker, RankAccumulator
from vlreid.evaluation._inputs import check_labels
from vlreid.evaluation._ranking import BYTES_PER_DISTANCE, pack_keys
from vlreid.evaluation.metrics import (
    EvaluationError,
    evaluate_distmat,
    evaluate_features,
    pairwise_distances,
)


@pytest.fixture(autouse=True)
def one_thread():  # type: ignore[no-untyped-def]
    """Small tensors on a shared, busy machine run faster (and steadier) on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True, params=["default", "buckets", "sort"])
def counting(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test three times: as shipped, with every chunk counted by buckets, and with every
    chunk's candidates sorted (the two ways of ``_ranking`` must give the same ranks)."""
    shares = {"default": _ranking.SPARSE_SHARE, "buckets": -1.0, "sort": 1.0}
    monkeypatch.setattr(_ranking, "SPARSE_SHARE", shares[request.param])
    return str(request.param)


def assert_matches_reference(result, reference) -> None:  # type: ignore[no-untyped-def]
    mAP, cmc, mINP, num_valid = reference
    assert result.num_valid_queries == num_valid
    assert result.mAP == pytest.approx(mAP, abs=1e-6)
    assert result.mINP == pytest.approx(mINP, abs=1e-6)
    np.testing.assert_allclose(result.cmc, cmc, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("seed", "num_query", "num_gallery", "ties", "max_rank"),
    [
        (0, 40, 300, False, 50),
        (1, 40, 300, True, 50),  # exact ties everywhere
        (2, 25, 12, False, 50),  # gallery smaller than max_rank
        (3, 30, 30, True, 20),
        (4, 60, 500, False, 100),
    ],
)
def test_distmat_equals_reference(
    seed: int, num_query: int, num_gallery: int, ties: bool, max_rank: int
) -> None:
    problem = make_problem(np.random.default_rng(seed), num_query, num_gallery, ties=ties)
    reference = reference_market(problem.distmat, *problem.labels(), max_rank=max_rank)
    assert 0 < reference[3] < num_query  # some queries valid, the same-camera one skipped
    result = evaluate_distmat(problem.distmat, *problem.labels(), max_rank=max_rank)
    assert_matches_reference(result, reference)
    assert result.num_skipped_queries == num_query - reference[3]
    assert result.cmc.shape == (max_rank,)
    # many tiny chunks, torch inputs and float64 give the same figures
    chunked = evaluate_distmat(
        torch.from_numpy(problem.distmat.astype(np.float64)),
        *(torch.from_numpy(labels) for labels in problem.labels()),
        max_rank=max_rank,
        memory_budget=1,
    )
    assert_matches_reference(chunked, reference)


@pytest.mark.parametrize(
    ("noise", "same_camera_fraction", "round_to", "expected_mAP"),
    [
        (0.05, 0.0, None, (0.99, 1.0)),  # good features: every match first
        (0.6, 0.0, None, (0.3, 0.95)),  # a mid-quality model
        (100.0, 0.0, None, (0.0, 0.15)),  # random features: matches anywhere
        (100.0, 0.5, None, (0.0, 0.15)),  # ... and half the pid's items junk (same camera)
        (0.6, 0.5, 0.25, (0.1, 0.95)),  # coarse distances: exact ties between many items
        (100.0, 0.0, 0.05, (0.0, 0.15)),  # ties among random distances
    ],
)
def test_regimes_equal_reference(
    noise: float, same_camera_fraction: float, round_to: float | None, expected_mAP: tuple
) -> None:
    rng = np.random.default_rng(int(noise * 100) + int(same_camera_fraction * 10))
    problem = make_feature_problem(rng, 60, 900, noise, same_camera_fraction=same_camera_fraction)
    if round_to is not None:  # a step of round_to x the median distance
        step = round_to * np.median(problem.distmat)
        problem.distmat = (np.round(problem.distmat / step) * step).astype(np.float32)
        assert len(np.unique(problem.distmat)) < problem.distmat.size / 20
    reference = reference_market(problem.distmat, *problem.labels())
    assert expected_mAP[0] <= reference[0] <= expected_mAP[1]
    for budget in (64 * 2**20, 1, 200_000):  # one chunk, one row per chunk, a few rows
        result = evaluate_distmat(problem.distmat, *problem.labels(), memory_budget=budget)
        assert_matches_reference(result, reference)


@pytest.mark.parametrize(
    "transform",
    [
        lambda d: d * 1e-40,  # subnormal distances
        lambda d: d * 1e30,  # huge distances
        lambda d: d * 1e36,  # ... up to 1e38, spans beyond float32 * K
        lambda d: 1e6 + d * 1e-3,  # tiny spread around a large value (few float32 levels)
        lambda d: np.where(d > np.median(d), np.inf, d),  # half the gallery infinitely far
        lambda d: np.where(d < np.quantile(d, 0.1), -np.inf, -d),  # reversed, some at -inf
        lambda d: np.zeros_like(d),  # everything tied
    ],
)
def test_extreme_distances_equal_reference(transform) -> None:  # type: ignore[no-untyped-def]
    problem = make_feature_problem(np.random.default_rng(8), 40, 500, noise=0.6)
    distmat = transform(problem.distmat.astype(np.float64)).astype(np.float32)
    reference = reference_market(distmat, *problem.labels())
    for budget in (64 * 2**20, 1):
        assert_matches_reference(
            evaluate_distmat(distmat, *problem.labels(), memory_budget=budget), reference
        )


def test_negative_and_signed_zero_distances() -> None:
    problem = make_problem(np.random.default_rng(5), 30, 200, ties=True)
    distmat = problem.distmat - 2.0  # levels -2, -1, 0 (some -0.0), 1
    distmat[distmat == 0] = np.where(np.random.default_rng(6).random(1) > 0.5, -0.0, 0.0)[0]
    distmat[:, ::7] = -0.0
    reference = reference_market(distmat, *problem.labels())
    assert_matches_reference(evaluate_distmat(distmat, *problem.labels()), reference)


def test_keys_order_like_a_stable_sort() -> None:
    values = torch.tensor(
        [3.0, -0.0, 0.0, -1.5, float("inf"), -float("inf"), 1e-38, -1e-38, 2.0, 0.0, -1.5, 7.0]
    )
    columns = torch.arange(len(values))
    rows = torch.tensor([0] * 6 + [1] * 6)
    keys = pack_keys(rows, values, columns, bits=4)
    expected = sorted(range(len(values)), key=lambda i: (rows[i].item(), values[i].item(), i))
    assert torch.argsort(keys).tolist() == expected


def test_hand_worked_example() -> None:
    # query 0 (pid 1, camera 0): gallery sorted by distance is
    #   g2 pid 1 cam 0 (removed), g0 pid 2, g1 pid 1 cam 1 (match), g3 pid 1 cam 2 (match)
    # -> matches at ranks 2 and 3: AP = (1/2 + 2/3) / 2, INP = 2 / 3, first match at rank 2.
    # query 1 (pid 3): no gallery item has pid 3 -> skipped.
    distmat = np.array([[0.2, 0.3, 0.1, 0.4], [0.1, 0.2, 0.3, 0.4]], dtype=np.float32)
    q_pids, g_pids = np.array([1, 3]), np.array([2, 1, 1, 1])
    q_camids, g_camids = np.array([0, 0]), np.array([1, 1, 0, 2])
    result = evaluate_distmat(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=5)
    assert result.mAP == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert result.mINP == pytest.approx(2 / 3)
    assert result.cmc.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    assert (result.num_valid_queries, result.num_skipped_queries) == (1, 1)
    assert result.summary() == {
        "mAP": pytest.approx((1 / 2 + 2 / 3) / 2),
        "rank1": 0.0,
        "rank5": 1.0,
        "rank10": 1.0,
        "mINP": pytest.approx(2 / 3),
    }


def test_ties_are_broken_by_gallery_index() -> None:
    q_pids, q_camids, g_camids = np.array([1]), np.array([0]), np.array([1, 1])
    distmat = np.zeros((1, 2), dtype=np.float32)
    match_first = evaluate_distmat(distmat, q_pids, np.array([1, 2]), q_camids, g_camids)
    match_second = evaluate_distmat(distmat, q_pids, np.array([2, 1]), q_camids, g_camids)
    assert (match_first.mAP, match_first.rank(1)) == (1.0, 1.0)
    assert (match_second.mAP, match_second.rank(1), match_second.rank(2)) == (0.5, 0.0, 1.0)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_features_equal_reference(metric: str) -> None:
    rng = np.random.default_rng(7)
    problem = make_problem(rng, 50, 400)
    # small integer features: squared Euclidean distances are exact in float32, ties included
    query = rng.integers(-2, 3, (50, 8)).astype(np.float32)
    gallery = rng.integers(-2, 3, (400, 8)).astype(np.float32)
    if metric == "euclidean":
        distmat = ((query[:, None, :] - gallery[None, :, :]) ** 2).sum(-1)
    else:
        query, gallery = rng.normal(size=(50, 8)), rng.normal(size=(400, 8))
        unit_query = query / np.linalg.norm(query, axis=1, keepdims=True)
        unit_gallery = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
        distmat = 1 - unit_query @ unit_gallery.T
    reference = reference_market(distmat, *problem.labels())
    result = evaluate_features(query, gallery, *problem.labels(), metric=metric, memory_budget=1)
    assert_matches_reference(result, reference)
    full = pairwise_distances(torch.from_numpy(query).float(), torch.from_numpy(gallery).float())
    if metric == "euclidean":
        np.testing.assert_array_equal(full.numpy(), distmat)


@pytest.mark.parametrize("ranked_entries", [400 * 3, 400 * 7 + 5])
def test_features_ranked_in_parts_of_a_chunk_equal_reference(
    monkeypatch: pytest.MonkeyPatch, ranked_entries: int
) -> None:
    # a chunk of the matrix product (all 50 queries) ranked 3 or 7 rows at a time
    monkeypatch.setattr(metrics, "RANKED_ENTRIES", ranked_entries)
    rows, ranked = metrics.feature_chunks(400, metrics.DEFAULT_MEMORY_BUDGET, torch.device("cpu"))
    assert ranked == ranked_entries // 400 and rows >= 50
    rng = np.random.default_rng(11)
    problem = make_problem(rng, 50, 400)
    query = rng.integers(-2, 3, (50, 8)).astype(np.float32)
    gallery = rng.integers(-2, 3, (400, 8)).astype(np.float32)
    distmat = ((query[:, None, :] - gallery[None, :, :]) ** 2).sum(-1)
    result = evaluate_features(query, gallery, *problem.labels())
    assert_matches_reference(result, reference_market(distmat, *problem.labels()))


@pytest.mark.parametrize("num_gallery", [400, 15_913, 82_161])
@pytest.mark.parametrize("budget", [2**20, 2**26, metrics.DEFAULT_MEMORY_BUDGET, 2**30])
def test_feature_chunks_fit_the_budget(num_gallery: int, budget: int) -> None:
    rows, ranked = metrics.feature_chunks(num_gallery, budget, torch.device("cpu"))
    assert 1 <= ranked <= rows
    assert ranked * num_gallery <= max(metrics.RANKED_ENTRIES, num_gallery)
    used = rows * num_gallery * 4 + ranked * num_gallery * (BYTES_PER_DISTANCE - 4)
    assert used <= max(budget, num_gallery * BYTES_PER_DISTANCE)


def test_perfect_and_reversed_rankings() -> None:
    pids = np.arange(10)
    distmat = np.abs(pids[:, None] - pids[None, :]).astype(np.float32)  # match at distance 0
    cameras = (np.zeros(10), np.ones(10))
    perfect = evaluate_distmat(distmat, pids, pids, *cameras, max_rank=10)
    assert (perfect.mAP, perfect.mINP, perfect.rank(1)) == (1.0, 1.0, 1.0)
    # negated, every non-match (distance < 0) comes before the match (distance -0.0): rank 10
    reversed_ranking = evaluate_distmat(-distmat, pids, pids, *cameras, max_rank=10)
    assert reversed_ranking.rank(9) == 0.0 and reversed_ranking.rank(10) == 1.0
    assert reversed_ranking.mAP == pytest.approx(0.1)
    assert reversed_ranking.mINP == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"q_pids": np.array([1, 2, 3])}, r"q_pids has shape \(3,\), expected \(2,\)"),
        ({"g_camids": np.array([0])}, r"g_camids has shape \(1,\), expected \(3,\)"),
        ({"distmat": np.zeros((2, 0), np.float32), "g_pids": np.zeros(0), "g_camids": np.zeros(0)},
         "gallery is empty"),
        ({"distmat": np.full((2, 3), np.nan, np.float32)}, "NaN"),
        ({"q_pids": np.array([7, 8])}, "no valid query"),
        ({"q_pids": np.array([1.5, 2.0])}, "must hold integers"),
        ({"distmat": np.zeros(3, np.float32)}, "must be 2-D"),
    ],
)  # fmt: skip
def test_bad_inputs_raise_one_clear_error(change: dict, message: str) -> None:
    inputs = {
        "distmat": np.zeros((2, 3), np.float32),
        "q_pids": np.array([1, 2]),
        "g_pids": np.array([1, 2, 2]),
        "q_camids": np.array([0, 0]),
        "g_camids": np.array([1, 1, 1]),
    }
    inputs.update(change)
    with pytest.raises(EvaluationError, match=message) as error:
        evaluate_distmat(**inputs)
    assert isinstance(error.value, ReIDError)


def test_feature_errors() -> None:
    labels = (np.array([1]), np.array([1]), np.array([0]), np.array([1]))
    with pytest.raises(EvaluationError, match="dimension 4 but gallery features 3"):
        evaluate_features(np.zeros((1, 4)), np.zeros((1, 3)), *labels)
    with pytest.raises(EvaluationError, match="unknown metric 'hamming'"):
        evaluate_features(np.zeros((1, 4)), np.zeros((1, 4)), *labels, metric="hamming")


@pytest.mark.parametrize("counting", ["default"], indirect=True)  # the shipped share decides
def test_the_sort_counts_a_good_models_chunks_and_buckets_a_bad_ones(
    monkeypatch: pytest.MonkeyPatch, counting: str
) -> None:
    sorted_chunks = []
    sort = _ranking._negatives_before_sparse

    def spy(*arguments):  # type: ignore[no-untyped-def]
        sorted_chunks.append(arguments[1].shape[0])
        return sort(*arguments)

    monkeypatch.setattr(_ranking, "_negatives_before_sparse", spy)
    for noise, expect_sorted in ((0.05, True), (100.0, False)):
        sorted_chunks.clear()
        problem = make_feature_problem(np.random.default_rng(3), 60, 900, noise)
        result = evaluate_distmat(problem.distmat, *problem.labels())
        assert_matches_reference(result, reference_market(problem.distmat, *problem.labels()))
        assert bool(sorted_chunks) == expect_sorted
        if expect_sorted:  # only the entries up to each row's farthest match
            assert 0 < sum(sorted_chunks) < _ranking.SPARSE_SHARE * problem.distmat.size


@pytest.mark.parametrize("workers", [2, 3])
def test_parts_ranked_on_several_threads_give_the_same_figures(
    monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    rng = np.random.default_rng(11)
    problem = make_problem(rng, 70, 600)
    query = rng.integers(-2, 3, (70, 8)).astype(np.float32)  # exact distances, ties included
    gallery = rng.integers(-2, 3, (600, 8)).astype(np.float32)
    distmat = ((query[:, None, :] - gallery[None, :, :]) ** 2).sum(-1)
    labels = problem.labels()
    reference = reference_market(distmat, *labels)
    cpu = torch.device("cpu")
    # the same parts on one thread and on several: the same sums, to the last bit
    sums = []
    for count in (1, workers):
        accumulator = RankAccumulator(50, cpu)
        tensors = check_labels(70, 600, *labels, cpu)
        with ChunkRanker(accumulator, tensors, 4, 600, cpu, count) as ranker:
            for start in range(0, 70, 18):  # chunks of 4 + 4 + 4 + 4 + 2 rows, the last of 16
                ranker.rank(torch.from_numpy(distmat[start : start + 18]), start)
        sums.append((accumulator.ap_sum, accumulator.inp_sum, accumulator.cmc().tolist()))
    assert sums[0] == sums[1]
    # and through the evaluators (evaluate_features' parts are sized for the workers)
    monkeypatch.setattr(metrics, "ranking_workers", lambda device: workers)
    for budget in (300_000, 64 * 2**20):
        assert_matches_reference(
            evaluate_distmat(distmat, *labels, memory_budget=budget), reference
        )
        by_features = evaluate_features(query, gallery, *labels, memory_budget=budget)
        assert_matches_reference(by_features, reference)
