"""``reid evaluate``: metrics (optionally re-ranked) and a ranked-list picture from features.

:func:`evaluate_inputs` takes :class:`~vlreid.evaluation.feature_file.EvaluationInputs`, whatever
produced them (a features file today, a checkpoint's extracted features as well), so every
input source shares one evaluation path.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlreid.config import (
    RERANK_K1,
    RERANK_K2,
    RERANK_KEYS,
    RERANK_LAMBDA,
    recorded_rerank_parameters,
)
from vlreid.errors import DataFileError, ReIDError
from vlreid.evaluation.feature_file import EvaluationInputs
from vlreid.evaluation.metrics import (
    METRICS,
    RankingResult,
    evaluate_distmat,
    evaluate_features,
    pairwise_distances,
)
from vlreid.evaluation.protocols import evaluate_vehicleid
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
class RerankParameters:
    """k-reciprocal re-ranking's parameters, and where each came from (Zhong et al.'s by default).

    Attributes:
        k1: Size of the k-reciprocal neighbourhood.
        k2: Neighbours of the local query expansion.
        lambda_value: Weight of the original distance.
        sources: Where k1, k2 and lambda came from, in that order: ``given`` (an option),
            ``from the run config`` or ``by default`` (Zhong et al.'s).
    """

    k1: int = RERANK_K1
    k2: int = RERANK_K2
    lambda_value: float = RERANK_LAMBDA
    sources: tuple[str, str, str] = ("by default",) * 3

    def describe(self) -> str:
        """``k1 50, k2 15, lambda 0.3 (from the run config)``, or with mixed sources
        ``k1 30, k2 15, lambda 0.3 (k1 given; k2, lambda from the run config)``."""
        groups: dict[str, list[str]] = {}
        for name, source in zip(("k1", "k2", "lambda"), self.sources, strict=True):
            groups.setdefault(source, []).append(name)
        origins = "; ".join(f"{', '.join(names)} {source}" for source, names in groups.items())
        values = f"k1 {self.k1}, k2 {self.k2}, lambda {self.lambda_value:g}"
        return f"{values} ({self.sources[0] if len(groups) == 1 else origins})"


@dataclass(frozen=True)
class EvaluationOptions:
    """How to evaluate.

    Attributes:
        metric: ``euclidean`` (squared) or ``cosine`` distance.
        max_rank: Length of the CMC curve.
        rerank: Apply k-reciprocal re-ranking first, with these parameters; None: do not.
        rerank_memory_limit: Bytes re-ranking may use.
        visualize: K, the gallery images per query in the picture; 0 draws nothing.
        visualize_queries: Number of queries (rows) in the picture.
        picture: PNG path of the picture.
        image_root: Folder that relative image paths are relative to.
        device: Where to compute (``None``: CPU).
        vehicleid_trials: VehicleID's protocol: mAP, CMC and mINP averaged over this many
            random one-image-per-vehicle gallery draws of the pooled test set
            (:func:`vlreid.evaluation.protocols.evaluate_vehicleid`); 0: the one draw the
            query/gallery split holds.
        trial_seed: Seed of those draws.
    """

    metric: str = "euclidean"
    max_rank: int = 50
    rerank: RerankParameters | None = None
    rerank_memory_limit: int = DEFAULT_MEMORY_LIMIT
    visualize: int = 0
    visualize_queries: int = 8
    picture: Path = Path("ranked_lists.png")
    image_root: Path | None = None
    device: str | None = None
    vehicleid_trials: int = 0
    trial_seed: int = 0


def rerank_parameters(
    run_config: Mapping[str, Any] | None,
    k1: int | None = None,
    k2: int | None = None,
    lambda_value: float | None = None,
    source: str = "the checkpoint",
) -> RerankParameters:
    """The re-ranking parameters to use: each given value, else the run config's, else Zhong
    et al.'s 20 / 6 / 0.3.

    Args:
        run_config: A run config as :meth:`vlreid.config.RunConfig.to_dict` writes it (the
            ``reid.config`` metadata of a checkpoint), or None. Keys it lacks (a config written
            before they existed) take the default.
        k1: ``--k1``, or None.
        k2: ``--k2``, or None.
        lambda_value: ``--lambda``, or None.
        source: Whose run config it is, for errors (the checkpoint's path).

    Raises:
        DataFileError: The run config's values are of the wrong type or out of range.
    """
    try:
        recorded = recorded_rerank_parameters(run_config or {})
    except ReIDError as error:
        raise DataFileError(f"the run config of {source}: {error}") from None
    given_values = (k1, k2, lambda_value)
    defaults = (RERANK_K1, RERANK_K2, RERANK_LAMBDA)
    values, sources = [], []
    for key, given, default in zip(RERANK_KEYS, given_values, defaults, strict=True):
        if given is not None:
            value, origin = given, "given"
        elif key in recorded:
            value, origin = recorded[key], "from the run config"
        else:
            value, origin = default, "by default"
        values.append(value)
        sources.append(origin)
    return RerankParameters(int(values[0]), int(values[1]), float(values[2]), tuple(sources))


@dataclass(frozen=True)
class EvaluationReport:
    """What ``reid evaluate`` prints.

    Attributes:
        result: The metrics.
        source: Where the features came from.
        rerank: The parameters of the k-reciprocal re-ranking applied, or None.
        num_query: Number of queries.
        num_gallery: Number of gallery items.
        picture: The ranked-list PNG, if one was drawn.
    """

    result: RankingResult
    source: str
    rerank: RerankParameters | None
    num_query: int
    num_gallery: int
    picture: Path | None = None
    trials: int = 0


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
    if options.vehicleid_trials < 0:
        raise ReIDError(f"--trials must be >= 0, got {options.vehicleid_trials}")
    if options.vehicleid_trials and options.rerank is not None:
        raise ReIDError(
            "--rerank ranks the query/gallery split as given; VehicleID's trials draw their own "
            "galleries: add --trials 0 to re-rank the split"
        )


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
    if options.rerank is not None:
        distmat = k_reciprocal_rerank(
            inputs.query_features,
            inputs.gallery_features,
            k1=options.rerank.k1,
            k2=options.rerank.k2,
            lambda_value=options.rerank.lambda_value,
            metric=options.metric,
            device=device,
            memory_limit=options.rerank_memory_limit,
        )
        result = evaluate_distmat(distmat, *labels, max_rank=options.max_rank)
    elif options.vehicleid_trials:
        result = evaluate_vehicleid(
            inputs.query_features,
            inputs.gallery_features,
            inputs.query_pids,
            inputs.gallery_pids,
            max_rank=options.max_rank,
            num_trials=options.vehicleid_trials,
            seed=options.trial_seed,
            metric=options.metric,
            device=device,
        )
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
        rerank=options.rerank,
        num_query=len(inputs.query_pids),
        num_gallery=len(inputs.gallery_pids),
        picture=picture,
        trials=options.vehicleid_trials,
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
            ``"rerank": {"k1": ..., "k2": ..., "lambda": ...}`` when re-ranked, ``"trials"``
            with VehicleID's trials, and
            ``"provenance"`` when ``provenance`` is given.
        provenance: The checkpoint's provenance fields (``digest``, ``git_commit``, ...;
            :func:`vlreid.model.weights.checkpoint_provenance`), or None.

    Raises:
        ReIDError: Unknown format.
    """
    summary = report.result.summary()
    rerank = report.rerank
    if output_format == "json":
        printed: dict[str, object] = dict(summary)
        if rerank is not None:
            printed["rerank"] = {"k1": rerank.k1, "k2": rerank.k2, "lambda": rerank.lambda_value}
        if report.trials:
            printed["trials"] = report.trials
        if provenance:
            printed["provenance"] = provenance
        return json.dumps(printed)
    if output_format != "table":
        raise ReIDError(
            f"unknown format {output_format!r}; expected one of {', '.join(OUTPUT_FORMATS)}"
        )
    result = report.result
    lines = [
        f"{report.source}: {report.num_query} queries ({result.num_valid_queries} valid, "
        f"{result.num_skipped_queries} without a match in another camera), "
        f"{report.num_gallery} gallery items",
        *([f"re-ranked with {rerank.describe()}"] if rerank is not None else []),
        *(
            [f"VehicleID protocol: the mean of {report.trials} random one-per-vehicle galleries"]
            if report.trials
            else []
        ),
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
