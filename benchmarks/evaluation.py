"""Evaluation speed against torchreid's and fast-reid's evaluators, measured in the same run.

Usage::

    python benchmarks/evaluation.py [--sizes mid market msmt17] [--threads 1 0] [--json OUT]
                                    [--peers-dir DIR] [--repeats 2]

Peers (benchmarks/eval_peers.py): torchreid 0.2.5's ``evaluate_rank`` (numpy; its Cython
``rank_cylib`` too if its sdist can build it) and fast-reid 1.4.0's Cython ``evaluate_cy``, fetched
with ``pip download --no-binary :all:`` and built in a temporary folder (kept with --peers-dir).

Problems: random 512-d L2-normalised features = identity centre + camera shift + noise, several
cameras, queries of every test identity, gallery distractors (pid 0). Four regimes by noise:
mAP about 1.0, 0.8, 0.3 and 0.01 (random features: an untrained or broken model). Sizes: ``mid``
1,200 x 8,000, ``market`` 3,368 x 15,913 (Market-1501's test set), ``msmt17`` 11,659 x 82,161.

On ``mid`` and ``market``, every evaluator ranks the same precomputed float32 distance matrix
(computed before the clock starts) in one subprocess per size, regime and thread count; ours is
``evaluate_distmat``; ours and fast-reid take the best of three runs, torchreid one. ``--threads
0`` means all cores (torch's default); the peers, single-threaded code, run once, on one
thread, and their time stands next to ours at every thread count. On
``msmt17``, where the matrix alone is 3.8 GB, ``evaluate_features`` (distances included, in
chunks) runs against the same chunked distance computation alone (norms + GEMM, nothing else),
each in its own subprocess for its peak resident memory (``ru_maxrss``), ``--repeats`` times
interleaved (best of them), on two problems: a mid-quality model and random features.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import eval_peers

SIZES: dict[str, tuple[int, int, int, int]] = {
    # queries, gallery, test identities, cameras
    "mid": (1_200, 8_000, 300, 6),
    "market": (3_368, 15_913, 750, 6),
    "msmt17": (11_659, 82_161, 3_060, 15),
    "toy": (300, 2_000, 75, 6),  # benchmarks/gpu.py without CUDA
}
DIMENSION = 512
REGIMES: dict[str, float] = {"1.0": 0.2, "0.8": 1.75, "0.3": 2.6, "0.01": float("inf")}
"""Target mAP -> feature noise against unit-variance identity centres (inf: random features)."""
MSMT17_NOISE = 1.9
"""The msmt17 problem: a mid-quality model (mAP about 0.59)."""
MSMT17_REGIMES: dict[str, float] = {"model": MSMT17_NOISE, "random": float("inf")}
"""The msmt17 problems: that model, and random features (mAP about 0: the slowest ranking)."""


def make_problem(size: str, noise: float, seed: int = 0) -> dict[str, np.ndarray]:
    """Features and labels of a random problem of the given size (float32, L2-normalised)."""
    num_query, num_gallery, num_ids, num_cameras = SIZES[size]
    rng = np.random.default_rng(seed)
    q_pids = rng.permutation(np.resize(np.arange(1, num_ids + 1), num_query))
    num_distractors = num_gallery // 6
    identities = np.resize(np.arange(1, num_ids + 1), num_gallery - num_distractors)
    g_pids = np.concatenate([identities, np.zeros(num_distractors, np.int64)])
    q_camids = rng.integers(0, num_cameras, num_query)
    g_camids = rng.integers(0, num_cameras, num_gallery)
    centres = rng.standard_normal((num_ids + 1, DIMENSION), dtype=np.float32)
    camera_shift = 0.6 * rng.standard_normal((num_cameras, DIMENSION), dtype=np.float32)

    def features(pids: np.ndarray, camids: np.ndarray) -> np.ndarray:
        values = rng.standard_normal((len(pids), DIMENSION), dtype=np.float32)
        if np.isfinite(noise):
            values = centres[pids] + camera_shift[camids] + noise * values
            values[pids == 0] = rng.standard_normal(((pids == 0).sum(), DIMENSION), np.float32)
        return values / np.linalg.norm(values, axis=1, keepdims=True)

    return {
        "query_features": features(q_pids, q_camids),
        "gallery_features": features(g_pids, g_camids),
        "q_pids": q_pids,
        "g_pids": g_pids,
        "q_camids": q_camids,
        "g_camids": g_camids,
    }


def _timed(function, repeats: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def _peer(name: str, path: str, distmat: np.ndarray, labels: list) -> dict:
    module = eval_peers.load(name, path)
    if name == "torchreid":  # its numpy loop, tens of times slower than the others: once
        evaluate = module.evaluate_rank
        seconds, (cmc, mAP) = _timed(lambda: evaluate(distmat, *labels, use_cython=False), 1)
    else:
        seconds, output = _timed(lambda: module.evaluate_cy(distmat, *labels, 50), 3)
        cmc, mAP = output[0], output[1]
        mAP = float(np.mean(mAP))  # fast-reid returns every query's AP
    return {"seconds": seconds, "mAP": float(mAP), "rank1": float(cmc[0])}


def run_ranking(size: str, regime: str, modules: dict[str, str], threads: list[int]) -> dict:
    """Every evaluator on one precomputed distance matrix: ``{name: {seconds, mAP, rank1}}``.

    The peers run once, on one thread (their code is single-threaded); ours once per entry of
    ``threads`` (0: torch's default, all cores).
    """
    import torch

    from vlreid.evaluation.metrics import evaluate_distmat, pairwise_distances

    all_cores = torch.get_num_threads()
    problem = make_problem(size, REGIMES[regime])
    query = torch.from_numpy(problem["query_features"])
    gallery = torch.from_numpy(problem["gallery_features"])
    distmat = pairwise_distances(query, gallery).numpy()  # torchreid's squared Euclidean
    labels = [problem[key] for key in ("q_pids", "g_pids", "q_camids", "g_camids")]
    torch.set_num_threads(1)
    figures = {name: _peer(name, path, distmat, labels) for name, path in modules.items()}
    for count in threads:
        torch.set_num_threads(count or all_cores)
        seconds, result = _timed(lambda: evaluate_distmat(distmat, *labels), 3)
        figures[f"ours-{count}"] = {
            "seconds": seconds,
            "mAP": result.mAP,
            "rank1": float(result.cmc[0]),
        }
    return figures


def run_msmt17(case: str, noise: float = MSMT17_NOISE) -> dict:
    """``gemm`` (the chunked distances alone) or ``ours`` (``evaluate_features``)."""
    import torch

    from vlreid.evaluation.metrics import (
        DEFAULT_MEMORY_BUDGET,
        GalleryDistances,
        evaluate_features,
        feature_chunks,
    )

    problem = make_problem("msmt17", noise)
    query = torch.from_numpy(problem["query_features"])
    gallery = torch.from_numpy(problem["gallery_features"])
    labels = [problem[key] for key in ("q_pids", "g_pids", "q_camids", "g_camids")]
    setup_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    figures: dict = {}
    if case == "gemm":
        distances = GalleryDistances(gallery)
        # the chunks of evaluate_features' matrix product
        cpu, workers = torch.device("cpu"), torch.get_num_threads()  # as evaluate_features
        rows, _ = feature_chunks(gallery.shape[0], DEFAULT_MEMORY_BUDGET, cpu, workers)
        buffer = torch.empty(rows, gallery.shape[0])
        for first in range(0, query.shape[0], rows):
            chunk = query[first : first + rows]
            distances(chunk, out=buffer[: chunk.shape[0]])
    else:
        result = evaluate_features(query, gallery, *labels)
        figures = {"mAP": result.mAP, "rank1": float(result.cmc[0])}
    figures["seconds"] = time.perf_counter() - start
    figures["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures["setup_peak_mb"] = setup_peak
    return figures


def _subprocess(arguments: list[str], threads: list[int]) -> dict:
    command = [sys.executable, __file__, *arguments, "--threads", *map(str, threads)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def _ranking_table(sizes: list[str], threads: list[int], status: eval_peers.PeerStatus) -> list:
    peers = list(status.modules)
    header = f"{'size':7} {'mAP~':5} {'thr':>3} {'mAP':>6} {'ours s':>7}"
    print(header + "".join(f" {name + ' s':>17} {'ratio':>6}" for name in peers))
    rows = []
    for size in [size for size in sizes if size != "msmt17"]:
        for regime in REGIMES:
            arguments = ["--case", "ranking", "--size", size, "--regime", regime]
            arguments += ["--modules", json.dumps(status.modules)]
            figures = _subprocess(arguments, threads)
            for count in threads:
                ours = figures[f"ours-{count}"]
                line = f"{size:7} {regime:5} {count or 'all':>3} {ours['mAP']:6.3f}"
                line += f" {ours['seconds']:7.3f}"
                for name in peers:
                    seconds = figures[name]["seconds"]
                    line += f" {seconds:17.3f} {seconds / ours['seconds']:5.1f}x"
                gaps = [abs(figures[name]["mAP"] - ours["mAP"]) for name in peers]
                print(line + (f"   largest mAP gap {max(gaps):.0e}" if gaps else ""), flush=True)
            rows.append({"size": size, "regime": regime, **figures})
    return rows


def _msmt17_table(threads: list[int], repeats: int) -> list:
    """Each case ``repeats`` times, interleaved (the machine's speed drifts); the best counts."""
    rows = []
    for thread_count in threads:
        runs: dict[str, list[dict]] = {}
        for _ in range(repeats):
            runs.setdefault("gemm", []).append(_subprocess(["--case", "gemm"], [thread_count]))
            for regime in MSMT17_REGIMES:
                arguments = ["--case", "ours", "--regime", regime]
                runs.setdefault(regime, []).append(_subprocess(arguments, [thread_count]))
        best = {case: min(figures, key=lambda f: f["seconds"]) for case, figures in runs.items()}
        gemm = best["gemm"]
        for regime in MSMT17_REGIMES:
            ours = best[regime]
            every = ", ".join(f"{f['seconds']:.2f}" for f in runs[regime])
            print(
                f"msmt17 threads {thread_count or 'all'} {regime}: distances alone "
                f"{gemm['seconds']:.2f} s (peak {gemm['peak_mb']:.0f} MB), evaluate_features "
                f"{ours['seconds']:.2f} s = {ours['seconds'] / gemm['seconds']:.2f}x (peak "
                f"{ours['peak_mb']:.0f} MB, {ours['setup_peak_mb']:.0f} MB before; mAP "
                f"{ours['mAP']:.3f}); best of {repeats}: ours {every}, distances alone "
                + ", ".join(f"{f['seconds']:.2f}" for f in runs["gemm"]),
                flush=True,
            )
        rows.append({"threads": thread_count, "best": best, "runs": runs})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["mid", "market", "msmt17"], choices=SIZES)
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 0], help="0: all cores")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--peers-dir", type=Path, help="build the peers here and keep them")
    parser.add_argument(
        "--repeats", type=int, default=2, help="msmt17: runs of each case (the best counts)"
    )
    for hidden in ("--case", "--size", "--regime", "--modules"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.case:  # a subprocess: one case, figures as JSON on stdout
        import torch

        if arguments.case == "ranking":
            modules = json.loads(arguments.modules)
            figures = run_ranking(arguments.size, arguments.regime, modules, arguments.threads)
        else:
            if arguments.threads[0]:
                torch.set_num_threads(arguments.threads[0])
            noise = MSMT17_REGIMES[arguments.regime] if arguments.regime else MSMT17_NOISE
            figures = run_msmt17(arguments.case, noise)
        print(json.dumps(figures))
        return
    folder = arguments.peers_dir or Path(tempfile.mkdtemp(prefix="vlreid-peers-"))
    try:
        status = eval_peers.prepare(folder)
        for name, reason in status.missing.items():
            print(f"{name}: not measured: {reason}")
        load = os.getloadavg()
        print(f"load average before the run: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        results = {"ranking": _ranking_table(arguments.sizes, arguments.threads, status)}
        if "msmt17" in arguments.sizes:
            results["msmt17"] = _msmt17_table(arguments.threads, arguments.repeats)
        results["missing_peers"] = status.missing
        results["load_average_after"] = os.getloadavg()
        if arguments.json:
            arguments.json.write_text(json.dumps(results, indent=1))
    finally:
        if arguments.peers_dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
