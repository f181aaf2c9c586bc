"""``reid evaluate``: metrics (optionally re-ranked) and a ranked-list picture from features.

:func:`evaluate_inputs` takes :class:`~vlreid.evaluation.feature_file.EvaluationInputs`, whatever
produced them (a features file today, a checkpoint's extracted features as well), so every
input source shares one evaluation path.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vlreid.errors import ReIDError
from vlreid.evaluation.feature_file import EvaluationInputs
from vlreid.evaluation.metrics import (
    METRICS,
    RankingResult,
    evaluate_distmat,
    evaluate_features,
    pairwise_distances,
)
from vlreid.evaluation.rerank import DEFAULT_MEMORY_LIMIT, k_reciprocal_rerank
from vlreid.evaluation.visualize import (
    RankedList,
    choose_queries,
    draw_ranked_lists,
    ranked_gallery,
    resolve_image,
    valid_queries,
)

logger = logging.getLogger(__name__)

OUTPUT_FORMATS: tuple[str, ...] = ("table", "json")


@dataclass(frozen=True)
class EvaluationOptions:
    """How to evaluate.

    Attributes:
        metric: ``euclidean`` (squared) or ``cosine`` distance.
        max_rank: Length of the CMC curve.
        rerank: Apply k-reciprocal re-ranking first.
        k1: Re-ranking's k1.
        k2: Re-ranking's k2.
        lambda_value: Re-ranking's lambda.
        rerank_memory_limit: Bytes re-ranking may use.
        visualize: K, the gallery images per query in the picture; 0 draws nothing.
        visualize_queries: Number of queries (rows) in the picture.
        picture: PNG path of the picture.
        image_root: Folder that relative image paths are relative to.
        device: Where to compute (``None``: CPU).
    """

    metric: str = "euclidean"
    max_rank: int = 50
    rerank: bool = False
    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3
    rerank_memory_limit: int = DEFAULT_MEMORY_LIMIT
    visualize: int = 0
    visualize_queries: int = 8
    picture: Path = Path("ranked_lists.png")
    image_root: Path | None = None
    device: str | None = None


@dataclass(frozen=True)
class EvaluationReport:
    """What ``reid evaluate`` prints.

    Attributes:
        result: The metrics.
        source: Where the features came from.
        reranked: Whether k-reciprocal re-ranking was applied.
        num_query: Number of queries.
        num_gallery: Number of gallery items.
        picture: The ranked-list PNG, if one was drawn.
    """

    result: RankingResult
    source: str
    reranked: bool
    num_query: int
    num_gallery: int
    picture: Path | None = None


def check_options(options: EvaluationOptions, output_format: str = "table") -> None:
    """Refuse bad options before any work (feature extraction takes minutes).

    Raises:
        ReIDError: Unknown metric or output format, or a negative picture size.
    """
    if options.metric not in METRICS:
        raise ReIDError(
            f"unknown metric {options.metric!r} (--metric); expected one of {', '.join(METRICS)}"
        )
    if output_format not in OUTPUT_FORMATS:
        raise ReIDError(
            f"unknown format {output_format!r} (--format); expected one of "
            f"{', '.join(OUTPUT_FORMATS)}"
        )
    if options.visualize < 0 or options.visualize_queries < 1:
        raise ReIDError("--visualize must be >= 0 and the number of pictured queries >= 1")


def evaluate_inputs(inputs: EvaluationInputs, options: EvaluationOptions) -> EvaluationReport:
    """Evaluate query features against the gallery, and draw the ranked lists if asked.

    Raises:
        ReIDError: Bad options, inconsistent inputs, re-ranking beyond its memory limit, or
            images that the picture needs are missing.
    """
    check_options(options)
    if options.visualize and (inputs.query_paths is None or inputs.gallery_paths is None):
        raise ReIDError(
            f"{inputs.source} has no query_paths/gallery_paths: the ranked-list picture needs "
            "the image paths"
        )
    device = torch.device(options.device or "cpu")
    labels = (inputs.query_pids, inputs.gallery_pids, inputs.query_camids, inputs.gallery_camids)
    distmat = None
    if options.rerank:
        distmat = k_reciprocal_rerank(
            inputs.query_features,
            inputs.gallery_features,
            k1=options.k1,
            k2=options.k2,
            lambda_value=options.lambda_value,
            metric=options.metric,
            device=device,
            memory_limit=options.rerank_memory_limit,
        )
        result = evaluate_distmat(distmat, *labels, max_rank=options.max_rank)
    else:
        result = evaluate_features(
            inputs.query_features,
            inputs.gallery_features,
            *labels,
            max_rank=options.max_rank,
            metric=options.metric,
            device=device,
        )
    picture = _draw(inputs, options, distmat, device) if options.visualize else None
    return EvaluationReport(
        result=result,
        source=inputs.source,
        reranked=options.rerank,
        num_query=len(inputs.query_pids),
        num_gallery=len(inputs.gallery_pids),
        picture=picture,
    )


def _draw(
    inputs: EvaluationInputs,
    options: EvaluationOptions,
    distmat: torch.Tensor | None,
    device: torch.device,
) -> Path:
    """Draw the ranked lists of a few valid queries (re-ranked distances when given)."""
    query_paths, gallery_paths = inputs.query_paths or [], inputs.gallery_paths or []
    valid = valid_queries(*(np.asarray(labels) for labels in _labels(inputs)))
    chosen = choose_queries(valid, options.visualize_queries)
    if distmat is None:
        query = torch.as_tensor(inputs.query_features[chosen], device=device)
        gallery = torch.as_tensor(inputs.gallery_features, device=device)
        distances = pairwise_distances(query, gallery, options.metric)
    else:
        distances = distmat[torch.as_tensor(chosen, device=distmat.device)]
    rows = []
    for row, query_index in enumerate(chosen.tolist()):
        pid, camid = int(inputs.query_pids[query_index]), int(inputs.query_camids[query_index])
        g_labels = (inputs.gallery_pids, inputs.gallery_camids)
        indices, correct = ranked_gallery(distances[row], pid, camid, *g_labels, options.visualize)
        gallery_images = [
            resolve_image(gallery_paths[index], options.image_root, "gallery_paths")
            for index in indices.tolist()
        ]
        query_image = resolve_image(query_paths[query_index], options.image_root, "query_paths")
        rows.append(
            RankedList(query_image, f"pid {pid} cam {camid}", gallery_images, correct.tolist())
        )
    source = "/".join(Path(inputs.source).parts[-2:])  # run folder + file: runs/scgi/model...
    title = f"{source}{' (re-ranked)' if distmat is not None else ''}"
    path = draw_ranked_lists(rows, options.picture, title=title)
    logger.info("wrote the ranked lists of %d queries to %s", len(rows), path)
    return path


def _labels(inputs: EvaluationInputs) -> tuple[np.ndarray, ...]:
    return inputs.query_pids, inputs.query_camids, inputs.gallery_pids, inputs.gallery_camids


def format_report(
    report: EvaluationReport,
    output_format: str = "table",
    provenance: dict[str, object] | None = None,
) -> str:
    """The report as a text table or as JSON.

    Args:
        report: What :func:`evaluate_inputs` returned.
        output_format: ``table`` or ``json``:
            ``{"mAP": ..., "rank1": ..., "rank5": ..., "rank10": ..., "mINP": ...}``, plus
            ``"provenance"`` when ``provenance`` is given.
        provenance: The checkpoint's provenance fields (``digest``, ``git_commit``, ...;
            :func:`vlreid.model.weights.checkpoint_provenance`), or None.

    Raises:
        ReIDError: Unknown format.
    """
    summary = report.result.summary()
    if output_format == "json":
        return json.dumps({**summary, "provenance": provenance} if provenance else summary)
    if output_format != "table":
        raise ReIDError(
            f"unknown format {output_format!r}; expected one of {', '.join(OUTPUT_FORMATS)}"
        )
    result = report.result
    lines = [
        f"{report.source}: {report.num_query} queries ({result.num_valid_queries} valid, "
        f"{result.num_skipped_queries} without a match in another camera), "
        f"{report.num_gallery} gallery items{', re-ranked' if report.reranked else ''}",
        "",
        "  ".join(f"{name:>7}" for name in ("mAP", "R1", "R5", "R10", "mINP")),
        "  ".join(f"{100 * value:6.2f}%" for value in summary.values()),
    ]
    if report.picture is not None:
        lines += ["", f"ranked lists: {report.picture}"]
    if provenance:
        digest, commit = provenance.get("digest"), provenance.get("git_commit")
        dirty = " (dirty)" if provenance.get("git_dirty") else ""
        lines += ["", f"provenance {str(digest)[:12]}: commit {commit}{dirty}"]
    return "\n".join(lines)
