"""Evaluation speed and peak memory, next to the per-query numpy loop measured in the same run.

Usage::

    python benchmarks/evaluation.py [--sizes mid market msmt17] [--threads 1] [--skip-reference]

Each case runs in a fresh subprocess (so that ``ru_maxrss``, the peak resident memory, is its
own: tracemalloc would not see torch's allocations) on a random problem with a realistic pid /
camid structure: 512-d L2-normalised features = identity centre + camera shift + noise (so mAP is
neither 0 nor 1), several cameras, queries of every test identity, gallery distractors (pid 0).

Sizes: ``mid`` 1,200 x 8,000 (the issue's mid-size problem); ``market`` 3,368 x 15,913
(Market-1501's test set); ``msmt17`` 11,659 x 82,161 (MSMT17's).

Cases:

* ``reference``: torchreid's ``evaluate_rank`` in numpy (Market mode), loop for loop: argsort of
  the whole distance matrix, then per query the camera filter, cumulative sums and the precision
  list comprehension ``[x / (i + 1.) for i, x in enumerate(tmp_cmc)]`` of its code.
* ``reference-vectorised``: the same per-query loop with that comprehension vectorised (a
  stronger baseline than torchreid's own numpy code).
* ``distmat``: :func:`vlreid.evaluation.metrics.evaluate_distmat` on the same precomputed matrix.
* ``features``: :func:`vlreid.evaluation.metrics.evaluate_features` from the features (distances
  included, computed in chunks; the Q x G matrix never exists).

Metric-stage times (``reference*`` and ``distmat``) exclude the distance matrix, which is
computed before the clock starts; ``features`` includes its distances. MSMT17 runs ``features``
only: there a precomputed float32 matrix alone would take 3.8 GB (the references need several
times that). On a shared, busy machine ``--threads 1`` gives the steadiest (and, with more
runnable processes than cores, the fastest) figures. Each subprocess also
checks its figures against the reference's when both ran (same problem, same seed).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

SIZES: dict[str, tuple[int, int, int, int]] = {
    # queries, gallery, test identities, cameras
    "mid": (1_200, 8_000, 300, 6),
    "market": (3_368, 15_913, 750, 6),
    "msmt17": (11_659, 82_161, 3_060, 15),
}
DIMENSION = 512
NOISE = 1.9
"""Feature noise against unit-variance identity centres: mAP about 0.6 at the Market size, a
mid-quality model (better models put fewer non-matches before the last match: faster for us)."""


def make_problem(size: str, seed: int = 0) -> dict[str, np.ndarray]:
    """Features and labels of a random problem of the given size (float32, L2-normalised)."""
    num_query, num_gallery, num_ids, num_cameras = SIZES[size]
    rng = np.random.default_rng(seed)
    q_pids = rng.permutation(np.resize(np.arange(1, num_ids + 1), num_query))
    num_distractors = num_gallery // 6
    g_pids = np.concatenate(
        [
            np.resize(np.arange(1, num_ids + 1), num_gallery - num_distractors),
            np.zeros(num_distractors, np.int64),
        ]
    )
    q_camids = rng.integers(0, num_cameras, num_query)
    g_camids = rng.integers(0, num_cameras, num_gallery)
    centres = rng.standard_normal((num_ids + 1, DIMENSION), dtype=np.float32)
    camera_shift = 0.6 * rng.standard_normal((num_cameras, DIMENSION), dtype=np.float32)

    def features(pids: np.ndarray, camids: np.ndarray) -> np.ndarray:
        noise = NOISE * rng.standard_normal((len(pids), DIMENSION), dtype=np.float32)
        values = centres[pids] + camera_shift[camids] + noise
        values[pids == 0] = rng.standard_normal(((pids == 0).sum(), DIMENSION), dtype=np.float32)
        return values / np.linalg.norm(values, axis=1, keepdims=True)

    return {
        "query_features": features(q_pids, q_camids),
        "gallery_features": features(g_pids, g_camids),
        "q_pids": q_pids,
        "g_pids": g_pids,
        "q_camids": q_camids,
        "g_camids": g_camids,
    }


def numpy_distmat(query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances, as torchreid computes them (float32)."""
    squared = (query**2).sum(1)[:, None] + (gallery**2).sum(1)[None, :]
    return squared - 2 * query @ gallery.T


def reference_evaluate(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_camids: np.ndarray,
    g_camids: np.ndarray,
    max_rank: int = 50,
    vectorised: bool = False,
) -> tuple[float, np.ndarray, float]:
    """torchreid's ``eval_market1501`` (numpy), with a stable sort for reproducible ties."""
    num_gallery = distmat.shape[1]
    max_rank = min(max_rank, num_gallery)
    indices = np.argsort(distmat, axis=1, kind="stable")
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    all_cmc, all_ap, all_inp = [], [], []
    for query in range(distmat.shape[0]):
        order = indices[query]
        remove = (g_pids[order] == q_pids[query]) & (g_camids[order] == q_camids[query])
        raw_cmc = matches[query][np.invert(remove)]
        if not np.any(raw_cmc):
            continue
        cmc = raw_cmc.cumsum()
        positions = np.where(raw_cmc == 1)
        last = np.max(positions)
        all_inp.append(cmc[last] / (last + 1.0))
        cmc[cmc > 1] = 1
        all_cmc.append(cmc[:max_rank])
        num_relevant = raw_cmc.sum()
        cumulative = raw_cmc.cumsum()
        if vectorised:
            precision = cumulative / np.arange(1.0, len(cumulative) + 1)
        else:
            precision = np.asarray([x / (i + 1.0) for i, x in enumerate(cumulative)])
        all_ap.append((precision * raw_cmc).sum() / num_relevant)
    cmc_curve = np.asarray(all_cmc).astype(np.float64).sum(0) / len(all_ap)
    return float(np.mean(all_ap)), cmc_curve, float(np.mean(all_inp))


def run_case(case: str, size: str, threads: int) -> dict[str, float | str]:
    """Run one case in this process and return its figures."""
    import torch

    torch.set_num_threads(threads)
    from vlreid.evaluation.metrics import evaluate_distmat, evaluate_features

    problem = make_problem(size)
    labels = [problem[key] for key in ("q_pids", "g_pids", "q_camids", "g_camids")]
    distmat = None
    if case != "features":
        distmat = numpy_distmat(problem["query_features"], problem["gallery_features"])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if case == "features":
        query, gallery = problem["query_features"], problem["gallery_features"]
        result = evaluate_features(query, gallery, *labels)
        mAP, cmc, mINP = result.mAP, result.cmc, result.mINP
    elif case == "distmat":
        result = evaluate_distmat(distmat, *labels)
        mAP, cmc, mINP = result.mAP, result.cmc, result.mINP
    else:
        vectorised = case == "reference-vectorised"
        mAP, cmc, mINP = reference_evaluate(distmat, *labels, vectorised=vectorised)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "case": case,
        "size": size,
        "seconds": seconds,
        "peak_mb": peak / 1024,
        "setup_peak_mb": rss_before / 1024,
        "mAP": mAP,
        "rank1": float(cmc[0]),
        "rank10": float(cmc[9]),
        "mINP": mINP,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["mid", "market", "msmt17"], choices=SIZES)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for our cases")
    parser.add_argument("--skip-reference", action="store_true", help="only our cases")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.case:  # a subprocess: one case, figures as JSON on stdout
        print(json.dumps(run_case(arguments.case, arguments.size, arguments.threads)))
        return
    print(f"torch threads: {arguments.threads}; reference: numpy, single-threaded loop")
    header = f"{'size':8} {'case':22} {'seconds':>9} {'peak MB':>8} {'speed-up':>9}"
    print(header + "   mAP      R1      mINP")
    for size in arguments.sizes:
        # MSMT17: features only; a precomputed float32 distance matrix alone would be 3.8 GB
        cases = ["features"] if size == "msmt17" else ["distmat", "features"]
        if size != "msmt17" and not arguments.skip_reference:
            cases = ["reference", "reference-vectorised", *cases]
        figures: dict[str, dict] = {}
        for case in cases:
            command = [sys.executable, __file__, "--case", case, "--size", size]
            command += ["--threads", str(arguments.threads)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            figures[case] = json.loads(output.strip().splitlines()[-1])
            row = figures[case]
            baseline = figures.get("reference")
            speed_up = f"{baseline['seconds'] / row['seconds']:8.1f}x" if baseline else " " * 9
            print(
                f"{size:8} {case:22} {row['seconds']:9.2f} {row['peak_mb']:8.0f} {speed_up} "
                f"{row['mAP']:.4f}  {row['rank1']:.4f}  {row['mINP']:.4f}",
                flush=True,
            )
        if "reference" in figures:
            reference = figures["reference"]
            for case in cases[1:]:
                keys = ("mAP", "rank1", "rank10", "mINP")
                gap = max(abs(figures[case][key] - reference[key]) for key in keys)
                print(f"  {case}: largest gap to the reference {gap:.1e}")
            vectorised = figures["reference-vectorised"]["seconds"]
            print(
                f"  speed-up over the vectorised numpy loop: distmat "
                f"{vectorised / figures['distmat']['seconds']:.1f}x, features "
                f"{vectorised / figures['features']['seconds']:.1f}x"
            )


if __name__ == "__main__":
    main()
