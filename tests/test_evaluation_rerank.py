"""k-reciprocal re-ranking against the authors' dense loops (rewritten here), and its limits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vlreid.evaluation.metrics import EvaluationError, evaluate_distmat, evaluate_features
from vlreid.evaluation.rerank import estimate_rerank_memory, k_reciprocal_rerank


@pytest.fixture(autouse=True)
def one_thread():  # type: ignore[no-untyped-def]
    """Small tensors on a shared, busy machine run faster (and steadier) on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def reference_rerank(
    query: np.ndarray, gallery: np.ndarray, k1: int, k2: int, lambda_value: float
) -> np.ndarray:
    """Zhong et al.'s numpy re-ranking, loop for loop, on squared Euclidean distances."""
    features = np.concatenate([query, gallery]).astype(np.float64)
    num_query, num_all = len(query), len(features)
    distances = ((features[:, None] - features[None]) ** 2).sum(-1)
    original = np.transpose(distances / np.max(distances, axis=0))
    initial_rank = np.argsort(original, axis=1, kind="stable")
    half = int(np.around(k1 / 2))
    weights = np.zeros((num_all, num_all))
    for i in range(num_all):
        forward = initial_rank[i, : k1 + 1]
        backward = initial_rank[forward, : k1 + 1]
        k_reciprocal = forward[np.where(backward == i)[0]]
        expansion = k_reciprocal
        for candidate in k_reciprocal:
            candidate_forward = initial_rank[candidate, : half + 1]
            candidate_backward = initial_rank[candidate_forward, : half + 1]
            candidate_reciprocal = candidate_forward[np.where(candidate_backward == candidate)[0]]
            shared = len(np.intersect1d(candidate_reciprocal, k_reciprocal))
            if shared > 2.0 / 3 * len(candidate_reciprocal):
                expansion = np.append(expansion, candidate_reciprocal)
        expansion = np.unique(expansion)
        weight = np.exp(-original[i, expansion])
        weights[i, expansion] = weight / np.sum(weight)
    if k2 != 1:
        weights = np.stack([weights[initial_rank[i, :k2]].mean(0) for i in range(num_all)])
    jaccard = np.zeros((num_query, num_all))
    for i in range(num_query):
        minimum_sum = np.zeros(num_all)
        for k in np.flatnonzero(weights[i]):
            others = np.flatnonzero(weights[:, k])
            minimum_sum[others] += np.minimum(weights[i, k], weights[others, k])
        jaccard[i] = 1 - minimum_sum / (2 - minimum_sum)
    final = jaccard * (1 - lambda_value) + original[:num_query] * lambda_value
    return final[:, num_query:]


def clustered_features(seed: int, num_query: int, num_gallery: int, num_ids: int = 8):
    rng = np.random.default_rng(seed)
    q_pids, g_pids = rng.integers(0, num_ids, num_query), rng.integers(0, num_ids, num_gallery)
    centres = rng.normal(size=(num_ids, 6))
    query = centres[q_pids] + 0.9 * rng.normal(size=(num_query, 6))
    gallery = centres[g_pids] + 0.9 * rng.normal(size=(num_gallery, 6))
    return query.astype(np.float32), gallery.astype(np.float32), q_pids, g_pids


@pytest.mark.parametrize(
    ("k1", "k2", "lambda_value"), [(20, 6, 0.3), (6, 3, 0.3), (4, 1, 0.5), (5, 200, 0.0)]
)
def test_rerank_equals_reference(k1: int, k2: int, lambda_value: float) -> None:
    query, gallery, _, _ = clustered_features(0, 15, 60)
    expected = reference_rerank(query, gallery, k1, k2, lambda_value)
    result = k_reciprocal_rerank(query, gallery, k1=k1, k2=k2, lambda_value=lambda_value)
    assert result.shape == (15, 60)
    np.testing.assert_allclose(result.numpy(), expected, rtol=0, atol=2e-5)
    assert (result.numpy() < 1.0).any()  # some Jaccard overlaps were found


def test_rerank_improves_a_clustered_problem() -> None:
    query, gallery, q_pids, g_pids = clustered_features(1, 40, 200)
    cameras = (np.zeros(40), np.ones(200))
    before = evaluate_features(query, gallery, q_pids, g_pids, *cameras)
    distmat = k_reciprocal_rerank(torch.from_numpy(query), torch.from_numpy(gallery))
    after = evaluate_distmat(distmat, q_pids, g_pids, *cameras)
    assert after.mAP > before.mAP + 0.02


def test_rerank_refuses_beyond_its_memory_limit() -> None:
    # the MSMT17 test set: the (Q, G) result alone is 3.8 GB
    assert estimate_rerank_memory(11_659, 82_161, 512) > 2 * 4 * 11_659 * 82_161
    query, gallery, _, _ = clustered_features(2, 10, 30)
    needed = estimate_rerank_memory(10, 30, 6)
    with pytest.raises(EvaluationError, match=r"needs about .* GiB, above the limit"):
        k_reciprocal_rerank(query, gallery, memory_limit=needed - 1)
    assert k_reciprocal_rerank(query, gallery, memory_limit=needed).shape == (10, 30)


def test_rerank_rejects_bad_arguments() -> None:
    query, gallery, _, _ = clustered_features(3, 4, 10)
    with pytest.raises(EvaluationError, match="k1 >= 1"):
        k_reciprocal_rerank(query, gallery, k1=0)
    with pytest.raises(EvaluationError, match="lambda"):
        k_reciprocal_rerank(query, gallery, lambda_value=1.5)
    with pytest.raises(EvaluationError, match=r"\(Q, D\) and \(G, D\)"):
        k_reciprocal_rerank(query, gallery[:, :3])
