"""Feature extraction: images -> L2-normalised ReID features, for evaluation and deployment.

:func:`extract_features` runs any ``model(images, camids) -> (B, D)`` (a ``ReIDModel`` during
training, a :class:`vlreid.model.InferenceModel` after it) over a loader of
:class:`~vlreid.datasets.bimodal.ReIDBatch`. :func:`checkpoint_features` does it for the query and
gallery of a benchmark and returns the arrays of the features file that ``reid evaluate
--features`` reads; :func:`extract_folder` is ``reid extract``. Nothing here imports transformers,
caption code or a text encoder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vlreid.datasets.cache import read_image
from vlreid.datasets.transforms import ReIDTransform
from vlreid.errors import DataFileError
from vlreid.paths import absolute_path

if TYPE_CHECKING:
    from vlreid.datasets.bimodal import ReIDBatch
    from vlreid.evaluation.feature_file import EvaluationInputs
    from vlreid.model import InferenceModel

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


@dataclass(frozen=True)
class FeatureSet:
    """Features of a list of images, in loader order.

    Attributes:
        features: ``(N, D)`` float32 on CPU.
        pids: ``(N,)`` int64.
        camids: ``(N,)`` int64.
        relpaths: N paths relative to the dataset root.
    """

    features: torch.Tensor
    pids: torch.Tensor
    camids: torch.Tensor
    relpaths: list[str]


@torch.no_grad()
def extract_features(
    model: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    loader: Iterable[ReIDBatch],
    device: torch.device | str = "cpu",
    use_camids: bool = False,
) -> FeatureSet:
    """Run ``model`` over every batch of ``loader``.

    Args:
        model: ``(images (B, 3, H, W), camids (B,) | None) -> (B, D)``, in eval mode.
        loader: Batches with ``images``, ``pids``, ``camids`` and ``relpaths``.
        device: Where the model is.
        use_camids: Pass the batch's camids (models with a camera embedding, SIE).
    """
    features, pids, camids, relpaths = [], [], [], []
    for batch in loader:
        images = batch["images"].to(device, non_blocking=True)
        batch_camids = batch["camids"].to(device) if use_camids else None
        features.append(model(images, batch_camids).float().cpu())
        pids.append(batch["pids"])
        camids.append(batch["camids"])
        relpaths.extend(batch["relpaths"])
    if not features:
        raise DataFileError("no images to extract features from")
    return FeatureSet(torch.cat(features), torch.cat(pids), torch.cat(camids), relpaths)


def checkpoint_features(
    model: InferenceModel,
    dataset: str,
    root: str | Path,
    batch_size: int = 128,
    num_workers: int = 2,
    **options: object,
) -> dict[str, np.ndarray]:
    """Query and gallery features of a benchmark, as the arrays of a features file.

    Args:
        model: A loaded checkpoint (its preprocessing is used).
        dataset: A name of ``vlreid.datasets.PARSERS``.
        root: The dataset folder.
        batch_size: Images per batch.
        num_workers: Loader worker processes.
        **options: Parser options of ``vlreid.datasets.load_manifest``.

    Returns:
        ``query_features`` ``(Q, D)``, ``gallery_features`` ``(G, D)``, ``query_pids``,
        ``gallery_pids``, ``query_camids``, ``gallery_camids`` and ``query_paths``,
        ``gallery_paths`` (absolute paths).
    """
    from vlreid.config import DataConfig
    from vlreid.datasets import load_manifest
    from vlreid.datasets.loaders import build_eval_loader

    manifest = load_manifest(dataset, root, **options)
    root = absolute_path(manifest.root)  # the paths written are absolute
    loading = DataConfig(dataset=dataset, num_workers=num_workers, eval_batch_size=batch_size)
    arrays: dict[str, np.ndarray] = {}
    for split in ("query", "gallery"):
        rows = manifest.split_rows(split)
        if rows.empty:
            raise DataFileError(f"the {dataset} manifest of {root} has no {split} images")
        loader = build_eval_loader(rows, root, loading, model.preprocessing, seed=0)
        result = extract_features(model, loader, model.device, use_camids=model.uses_camids)
        arrays[f"{split}_features"] = result.features.numpy()
        arrays[f"{split}_pids"] = result.pids.numpy()
        arrays[f"{split}_camids"] = result.camids.numpy()
        arrays[f"{split}_paths"] = np.array([str(root / path) for path in result.relpaths])
        logger.info("extracted %d %s features", len(rows), split)
    return arrays


def checkpoint_inputs(
    checkpoint: str | Path,
    dataset: str,
    root: str | Path,
    device: str | None = None,
    batch_size: int = 128,
    num_workers: int = 2,
    dataset_options: dict[str, object] | None = None,
) -> EvaluationInputs:
    """``reid evaluate --checkpoint``: load the inference weights, extract query/gallery features.

    ``dataset_options`` are the parser options of ``vlreid.datasets.load_manifest`` (cuhk03's
    ``variant``, vehicleid's ``test_size`` and ``seed``...).

    Returns:
        The validated inputs of the evaluation report (image paths included, for pictures).
    """
    from vlreid.evaluation.feature_file import EvaluationInputs
    from vlreid.model import load_model

    model = load_model(checkpoint, device or "cpu")
    arrays = checkpoint_features(
        model, dataset, root, batch_size, num_workers, **(dataset_options or {})
    )
    return EvaluationInputs.from_arrays(arrays, source=str(checkpoint))


class ImageFiles(Dataset[torch.Tensor]):
    """Images of a list of files, through an evaluation transform."""

    def __init__(self, paths: list[Path], transform: ReIDTransform) -> None:
        self.paths = paths
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(read_image(self.paths[index]))


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted; hidden names skipped).

    Raises:
        DataFileError: ``folder`` is not a folder or holds no image.
    """
    if not folder.is_dir():
        raise DataFileError(f"{folder} is not a folder of images")
    paths = sorted(
        path
        for path in folder.rglob("*")
        if path.suffix.lower() in IMAGE_SUFFIXES
        and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    if not paths:
        raise DataFileError(f"no image ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    return paths


@torch.no_grad()
def extract_folder(
    model: InferenceModel,
    images: str | Path,
    out: str | Path,
    batch_size: int = 128,
    num_workers: int = 2,
) -> int:
    """``reid extract``: features of every image under a folder, written to an ``.npz``.

    The file holds ``features`` ``(N, D)`` float32 (L2-normalised) and ``paths`` (N paths
    relative to ``images``), written atomically. No camera ids are known, so SIE (if any) is off.

    Returns:
        The number of images.
    """
    folder, out = Path(images), Path(out)
    paths = list_images(folder)
    loader = DataLoader(
        ImageFiles(paths, model.transform), batch_size=batch_size, num_workers=num_workers
    )
    features = [model(batch.to(model.device)).float().cpu() for batch in loader]
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp.npz")
    np.savez(
        temporary,
        features=torch.cat(features).numpy(),
        paths=np.array([str(path.relative_to(folder)) for path in paths]),
    )
    temporary.replace(out)
    logger.info("wrote the features of %d images to %s", len(paths), out)
    return len(paths)
