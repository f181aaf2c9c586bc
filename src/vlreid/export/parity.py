"""The parity check of ``reid export --format onnx``: onnxruntime against PyTorch on real images.

PyTorch's side is ``load_model(checkpoint)(pil_images)``, i.e. the model with its own
preprocessing; onnxruntime's side preprocesses the same files with
:func:`vlreid.export.reference.preprocess` from the sidecar alone. Four figures:

- ``preprocessing_max_abs_diff``: reference preprocessing vs ``InferenceModel.preprocess``;
- ``max_abs_diff``: max ``|onnx - torch|`` over every feature element;
- ``top_k_agreement``: the fraction of images whose top-k neighbours among the other images
  (cosine similarity; k = min(10, N - 1)) are the same, in the same order, for both;
- ``batch_max_abs_diff``: onnxruntime on the first 8 images one at a time vs as one batch.

The check passes when both feature differences are within the tolerance (1e-4) and every top-k
list agrees.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from vlreid.errors import DataFileError, ReIDError
from vlreid.evaluation.features import list_images
from vlreid.export.reference import preprocess
from vlreid.model import InferenceModel

logger = logging.getLogger(__name__)

BATCH_CHECK_SIZE = 8


@dataclass(frozen=True)
class ParityReport:
    """The figures of one parity check (module docstring).

    Attributes:
        num_images: Images compared.
        max_abs_diff: Max ``|onnx - torch|`` feature element.
        top_k: k of the retrieval comparison.
        top_k_agreement: Fraction of images whose top-k lists agree.
        batch_max_abs_diff: onnxruntime, batch of 1 vs batch of ``batch_size_checked``.
        batch_size_checked: Images in that batch (8, or fewer when fewer images).
        preprocessing_max_abs_diff: Reference preprocessing vs the model's own.
        tolerance: Allowed feature difference.
    """

    num_images: int
    max_abs_diff: float
    top_k: int
    top_k_agreement: float
    batch_max_abs_diff: float
    batch_size_checked: int
    preprocessing_max_abs_diff: float
    tolerance: float

    @property
    def passed(self) -> bool:
        """Features within the tolerance (also batch 1 vs batch N) and identical top-k lists."""
        return (
            self.max_abs_diff <= self.tolerance
            and self.batch_max_abs_diff <= self.tolerance
            and self.top_k_agreement == 1.0
        )

    def describe(self) -> str:
        """The figures as one line."""
        return (
            f"{self.num_images} images: max |onnx - torch| {self.max_abs_diff:.2e} "
            f"(tolerance {self.tolerance:.0e}); top-{self.top_k} retrieval identical for "
            f"{self.top_k_agreement:.1%} of queries; batch 1 vs batch {self.batch_size_checked} "
            f"max diff {self.batch_max_abs_diff:.2e}; sidecar preprocessing vs load_model's "
            f"max diff {self.preprocessing_max_abs_diff:.2e}"
        )


def folder_images(folder: Path, limit: int | None = None) -> list[Path]:
    """:func:`vlreid.evaluation.features.list_images` of ``folder``, at most ``limit`` of them.

    Raises:
        DataFileError: Not a folder, or no image in it.
    """
    return list_images(folder)[:limit]


def query_images(
    dataset: str, root: Path, limit: int | None = None
) -> tuple[list[Path], np.ndarray]:
    """The first ``limit`` query images of a benchmark and their camids ``(N,)``.

    Raises:
        ReIDError: The dataset cannot be parsed or has no query split.
    """
    from vlreid.datasets import load_manifest

    manifest = load_manifest(dataset, root)
    rows = manifest.split_rows("query").head(limit)
    if rows.empty:
        raise DataFileError(f"the {dataset} manifest of {manifest.root} has no query images")
    base = manifest.root
    return [base / path for path in rows["relpath"]], rows["camid"].to_numpy(np.int64)


def top_k_lists(features: np.ndarray, k: int) -> np.ndarray:
    """``(N, k)`` indices of each row's k most similar other rows (stable order)."""
    similarity = features.astype(np.float64) @ features.astype(np.float64).T
    np.fill_diagonal(similarity, -np.inf)
    return np.argsort(-similarity, axis=1, kind="stable")[:, :k]


def onnx_session(path: Path) -> Any:
    """An onnxruntime CPU session.

    Raises:
        ReIDError: onnxruntime is not installed.
    """
    try:
        import onnxruntime
    except ImportError as error:
        message = "the parity check needs onnxruntime: pip install 'vlreid[export]'"
        raise ReIDError(message) from error
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def check_parity(
    onnx_path: Path,
    sidecar: dict[str, Any],
    model: InferenceModel,
    paths: Sequence[Path],
    camids: np.ndarray | None = None,
    tolerance: float = 1e-4,
    batch_size: int = 32,
) -> ParityReport:
    """Compare onnxruntime with PyTorch on ``paths`` (module docstring).

    Args:
        onnx_path: The exported model.
        sidecar: Its ``model.onnx.json``.
        model: The PyTorch model (``load_model`` of the source checkpoint).
        paths: Image files; at least 2.
        camids: ``(N,)`` camera ids for a model with SIE (zeros when None); ignored otherwise.
        tolerance: Allowed feature difference.
        batch_size: Images per batch.

    Raises:
        DataFileError: Fewer than 2 images, or an unreadable one.
    """
    from vlreid.datasets.cache import read_image

    if len(paths) < 2:
        raise DataFileError(f"the parity check needs at least 2 images, got {len(paths)}")
    session = onnx_session(onnx_path)
    uses_camids = len(session.get_inputs()) > 1
    camids = np.zeros(len(paths), np.int64) if camids is None else np.asarray(camids, np.int64)

    def run_onnx(images: np.ndarray, cams: np.ndarray) -> np.ndarray:
        feeds = {"images": images, **({"camids": cams} if uses_camids else {})}
        return session.run(["features"], feeds)[0]

    torch_parts, onnx_parts, preprocessing_diff = [], [], 0.0
    first_inputs = np.empty((0,))
    for start in range(0, len(paths), batch_size):
        images: list[Image.Image] = [read_image(path) for path in paths[start : start + batch_size]]
        cams = camids[start : start + len(images)]
        inputs = preprocess(images, sidecar)
        own = model.preprocess(images).cpu().numpy()
        preprocessing_diff = max(preprocessing_diff, float(np.abs(inputs - own).max()))
        with torch.no_grad():
            torch_camids = torch.tensor(cams) if model.uses_camids else None
            torch_parts.append(model(images, torch_camids).float().cpu().numpy())
        onnx_parts.append(run_onnx(inputs, cams))
        if start == 0:
            first_inputs = inputs
    torch_features, onnx_features = np.concatenate(torch_parts), np.concatenate(onnx_parts)
    checked = min(BATCH_CHECK_SIZE, len(first_inputs))
    batched = run_onnx(first_inputs[:checked], camids[:checked])
    single = np.concatenate(
        [run_onnx(first_inputs[i : i + 1], camids[i : i + 1]) for i in range(checked)]
    )
    k = min(10, len(paths) - 1)
    agreement = top_k_lists(torch_features, k) == top_k_lists(onnx_features, k)
    report = ParityReport(
        num_images=len(paths),
        max_abs_diff=float(np.abs(onnx_features - torch_features).max()),
        top_k=k,
        top_k_agreement=float(agreement.all(axis=1).mean()),
        batch_max_abs_diff=float(np.abs(batched - single).max()),
        batch_size_checked=checked,
        preprocessing_max_abs_diff=preprocessing_diff,
        tolerance=tolerance,
    )
    logger.debug("parity: %s", report.describe())
    return report
