"""What the training loop does across processes: reduce loss terms, evaluate with gathered features.

Both work unchanged in a single process, where gathering and reducing are no-ops.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from vlreid.training.data import RunData

logger = logging.getLogger(__name__)


def mean_across_processes(accelerator: Any, sums: dict[str, float], steps: int) -> dict[str, float]:
    """Epoch means of the loss terms, averaged over processes."""
    values = torch.tensor(list(sums.values()), dtype=torch.float64, device=accelerator.device)
    means = accelerator.reduce(values / max(steps, 1), reduction="mean")
    return dict(zip(sums, means.tolist(), strict=True))


@torch.no_grad()
def evaluate(
    accelerator: Any,
    model: torch.nn.Module,
    loader: torch.utils.data.DataLoader,
    indices: torch.Tensor,
    data: RunData,
    rerank: bool = False,
) -> dict[str, float] | None:
    """mAP, rank1/5/10 and mINP of ``model`` on query/gallery; None on ranks other than 0.

    Each rank extracts the features of its share (rows ``indices`` of ``data.evaluation``); rank 0
    gathers them in manifest order and scores them with the evaluation engine (``reid evaluate``'s,
    k-reciprocal re-ranking included when ``rerank``).
    """
    from vlreid.evaluation.feature_file import EvaluationInputs
    from vlreid.evaluation.features import extract_features
    from vlreid.evaluation.scoring import EvaluationOptions, evaluate_inputs

    model.eval()
    with accelerator.autocast():
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
    report = evaluate_inputs(inputs, EvaluationOptions(rerank=rerank))
    scores = report.result.summary()
    logger.info("mAP %.4f rank-1 %.4f", scores["mAP"], scores["rank1"])
    return scores
