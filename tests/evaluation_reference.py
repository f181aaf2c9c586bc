"""Naive references and random problems for the evaluation tests (kept apart from the library).

``reference_market`` is the per-query loop of torchreid's ``evaluate_rank`` (Market mode) with a
stable sort (ties ranked by gallery index, our documented convention) and the CMC curve padded
with its last value up to ``max_rank`` (torchreid shortens it to the gallery size instead).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Problem:
    """A random ReID evaluation problem."""

    distmat: np.ndarray
    q_pids: np.ndarray
    g_pids: np.ndarray
    q_camids: np.ndarray
    g_camids: np.ndarray

    def labels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.q_pids, self.g_pids, self.q_camids, self.g_camids


def make_problem(
    rng: np.random.Generator,
    num_query: int,
    num_gallery: int,
    num_ids: int = 20,
    num_cameras: int = 4,
    ties: bool = False,
) -> Problem:
    """Queries and gallery over ``num_ids`` identities, with distractors (pid 0, gallery only),
    one query identity seen only by its own camera (that query must be skipped), and distances
    that favour true matches a little (so that mAP is neither 0 nor 1). ``ties`` rounds the
    distances to a few integer levels, so that exact ties are everywhere."""
    q_pids = rng.integers(1, num_ids + 1, num_query)
    q_camids = rng.integers(0, num_cameras, num_query)
    g_pids = rng.integers(0, num_ids + 1, num_gallery)  # pid 0: distractors
    g_camids = rng.integers(0, num_cameras, num_gallery)
    # identity num_ids + 1 appears in one query and in the gallery only from the same camera
    q_pids[0], q_camids[0] = num_ids + 1, 0
    g_pids[:2], g_camids[:2] = num_ids + 1, 0
    same = q_pids[:, None] == g_pids[None, :]
    distmat = rng.random((num_query, num_gallery)) + 0.6 * ~same * rng.random((num_query, 1))
    if ties:
        distmat = np.floor(distmat * 4)
    return Problem(distmat.astype(np.float32), q_pids, g_pids, q_camids, g_camids)


def make_feature_problem(
    rng: np.random.Generator,
    num_query: int,
    num_gallery: int,
    noise: float,
    num_ids: int = 30,
    num_cameras: int = 4,
    same_camera_fraction: float = 0.0,
    dimension: int = 16,
) -> Problem:
    """Squared Euclidean distances (float32) of features = identity centre + ``noise`` x
    Gaussian: noise 0.1 ranks nearly perfectly, 1 is a mid-quality model, 100 is random
    features (mAP ~ 0.01). ``same_camera_fraction`` of the gallery items of each query's identity
    are moved to the query's camera, the junk that the protocol ignores. Distractors: pid 0."""
    q_pids = rng.integers(1, num_ids + 1, num_query)
    g_pids = rng.integers(0, num_ids + 1, num_gallery)
    q_camids = rng.integers(0, num_cameras, num_query)
    g_camids = rng.integers(0, num_cameras, num_gallery)
    if same_camera_fraction:
        for pid in range(1, num_ids + 1):  # the first query of a pid fixes its junk camera
            queries = np.flatnonzero(q_pids == pid)
            items = np.flatnonzero(g_pids == pid)
            if len(queries) and len(items):
                moved = items[rng.random(len(items)) < same_camera_fraction]
                g_camids[moved] = q_camids[queries[0]]
    centres = rng.standard_normal((num_ids + 1, dimension))
    query = centres[q_pids] + noise * rng.standard_normal((num_query, dimension))
    gallery = centres[g_pids] + noise * rng.standard_normal((num_gallery, dimension))
    gallery[g_pids == 0] = noise * rng.standard_normal(((g_pids == 0).sum(), dimension))
    query, gallery = query.astype(np.float32), gallery.astype(np.float32)
    distmat = ((query[:, None, :] - gallery[None, :, :]) ** 2).sum(-1, dtype=np.float32)
    return Problem(distmat, q_pids, g_pids, q_camids, g_camids)


def reference_market(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    max_rank: int = 50,
) -> tuple[float, np.ndarray, float, int]:
    """``(mAP, cmc, mINP, num_valid)`` by the per-query loop."""
    indices = np.argsort(distmat, axis=1, kind="stable")
    all_ap, all_cmc, all_inp = [], [], []
    for query in range(distmat.shape[0]):
        order = indices[query]
        remove = (g_pids[order] == q_pids[query]) & (g_camids[order] == q_camids[query])
        raw_cmc = (g_pids[order][~remove] == q_pids[query]).astype(np.int64)
        if not raw_cmc.any():
            continue
        cumulative = raw_cmc.cumsum()
        last = np.flatnonzero(raw_cmc).max()
        all_inp.append(cumulative[last] / (last + 1.0))
        hits = np.minimum(cumulative, 1).astype(np.float64)
        cmc = np.ones(max_rank)
        cmc[: min(max_rank, len(hits))] = hits[:max_rank]
        all_cmc.append(cmc)
        precision = cumulative / np.arange(1, len(raw_cmc) + 1.0)
        all_ap.append((precision * raw_cmc).sum() / raw_cmc.sum())
    return float(np.mean(all_ap)), np.mean(all_cmc, axis=0), float(np.mean(all_inp)), len(all_ap)


def reference_single_shot_cmc(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    priorities: np.ndarray,
    max_rank: int = 50,
) -> np.ndarray:
    """CUHK03 single-shot CMC by torchreid's per-query loop; in repeat r, identity p is drawn as
    its remaining item of highest ``priorities[r]`` (instead of ``np.random.choice``)."""
    indices = np.argsort(distmat, axis=1, kind="stable")
    all_cmc = []
    for query in range(distmat.shape[0]):
        order = indices[query]
        remove = (g_pids[order] == q_pids[query]) & (g_camids[order] == q_camids[query])
        kept = order[~remove]
        raw_cmc = g_pids[kept] == q_pids[query]
        if not raw_cmc.any():
            continue
        cmc = np.zeros(max_rank)
        for repeat_priorities in priorities:
            mask = np.zeros(len(kept), dtype=bool)
            for pid in np.unique(g_pids[kept]):
                candidates = np.flatnonzero(g_pids[kept] == pid)
                mask[candidates[np.argmax(repeat_priorities[kept[candidates]])]] = True
            hits = np.minimum(raw_cmc[mask].cumsum(), 1).astype(np.float64)
            padded = np.ones(max_rank)
            padded[: min(max_rank, len(hits))] = hits[:max_rank]
            cmc += padded
        all_cmc.append(cmc / len(priorities))
    return np.mean(all_cmc, axis=0)
