"""What the training loop does across processes: reduce loss terms, evaluate with gathered features.

Both work unchanged in a single process, where gathering and reducing are no-ops.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import Any

import torch

from vlreid.config import RunConfig, TrainConfig
from vlreid.training.data import RunData, build_eval_shard

logger = logging.getLogger(__name__)


def mean_across_processes(
    accelerator: Any, names: Sequence[str], sums: torch.Tensor, batches: int
) -> dict[str, float]:
    """Epoch means of the loss terms, averaged over processes: the epoch's one read of them.

    Args:
        accelerator: The run's ``accelerate.Accelerator``.
        names: Names of the terms.
        sums: ``(T,)`` float64 sums of the terms over the epoch's batches, on the device.
        batches: Batches summed.
    """
    means = accelerator.reduce(sums / max(batches, 1), reduction="mean")
    return dict(zip(names, means.tolist(), strict=True))


def build_evaluator(
    accelerator: Any, config: RunConfig, data: RunData, model: torch.nn.Module
) -> Callable[[], dict[str, float] | None]:
    """``evaluate_model()``: :func:`evaluate` of ``model`` on this rank's query/gallery share."""
    loader, indices = build_eval_shard(
        config, data, accelerator.num_processes, accelerator.process_index
    )
    return functools.partial(evaluate, accelerator, model, loader, indices, data, config.train)


@torch.no_grad()
def evaluate(
    accelerator: Any,
    model: torch.nn.Module,
    loader: torch.utils.data.DataLoader,
    indices: torch.Tensor,
    data: RunData,
    train: TrainConfig | None = None,
) -> dict[str, float] | None:
    """mAP, rank1/5/10 and mINP of ``model`` on query/gallery; None on ranks other than 0.

    Each rank extracts the features of its share (rows ``indices`` of ``data.evaluation``); rank 0
    gathers them in manifest order and scores them with the evaluation engine (``reid evaluate``'s,
    k-reciprocal re-ranking with ``train.rerank_k1``, ``rerank_k2``, ``rerank_lambda`` included
    when ``train.rerank``).
    """
    from vlreid.evaluation.feature_file import EvaluationInputs
    from vlreid.evaluation.features import extract_features
    from vlreid.evaluation.scoring import EvaluationOptions, RerankParameters, evaluate_inputs

    model.eval()  # in float32 (no autocast), as the official evaluation and reid evaluate
    uses_camids = getattr(model, "sie_embedding", None) is not None
    result = extract_features(model, loader, accelerator.device, use_camids=uses_camids)
    features = accelerator.pad_across_processes(result.features.to(accelerator.device), dim=0)
    positions = accelerator.pad_across_processes(indices.to(accelerator.device), pad_index=-1)
    features, positions = accelerator.gather(features).cpu(), accelerator.gather(positions).cpu()
    if not accelerator.is_main_process:
        return None
    rows = data.evaluation
    ordered = torch.empty(len(rows), features.shape[1])
    valid = positions >= 0
    ordered[positions[valid]] = features[valid].float()
    ordered_features = ordered.numpy()
    query = (rows["split"] == "query").to_numpy()
    pids, camids = rows["pid"].to_numpy(), rows["camid"].to_numpy()
    arrays = {}
    for side, mask in (("query", query), ("gallery", ~query)):
        arrays[f"{side}_features"] = ordered_features[mask]
        arrays[f"{side}_pids"], arrays[f"{side}_camids"] = pids[mask], camids[mask]
    inputs = EvaluationInputs.from_arrays(arrays, source="query/gallery features")
    rerank = None
    if train is not None and train.rerank:
        values = (train.rerank_k1, train.rerank_k2, train.rerank_lambda)
        rerank = RerankParameters(*values, sources=("from the run config",) * 3)
    report = evaluate_inputs(inputs, EvaluationOptions(rerank=rerank))
    scores = report.result.summary()
    logger.info("mAP %.4f rank-1 %.4f", scores["mAP"], scores["rank1"])
    return scores
