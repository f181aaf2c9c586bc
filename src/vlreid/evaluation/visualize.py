"""Ranked-list pictures: each query, then its top-K gallery images framed green (same identity)
or red (another identity), one query per row, written as a PNG with matplotlib's Agg canvas.

Gallery items with the query's pid and camera are left out, as the metrics leave them out, and
ties are ranked by gallery index, as the metrics rank them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vlreid.errors import DataFileError

CORRECT_COLOUR = "#1a9641"
WRONG_COLOUR = "#d7191c"
QUERY_COLOUR = "#2b2b2b"
THUMBNAIL_SIZE = (64, 128)
"""Width and height every image is resized to (ReID crops are about 1:2)."""


@dataclass(frozen=True)
class RankedList:
    """One row of the picture.

    Attributes:
        query_image: Path of the query image.
        query_label: Caption under the query (e.g. its pid and camera).
        gallery_images: The top-K gallery image paths, best first.
        correct: Whether each of them has the query's identity.
    """

    query_image: Path
    query_label: str
    gallery_images: list[Path]
    correct: list[bool]


def valid_queries(
    q_pids: np.ndarray, q_camids: np.ndarray, g_pids: np.ndarray, g_camids: np.ndarray
) -> np.ndarray:
    """``(Q,)`` bool: the query has a gallery item of its pid from another camera."""
    per_pid: dict[int, int] = {}
    per_pid_camera: dict[tuple[int, int], int] = {}
    for pid, camid in zip(g_pids.tolist(), g_camids.tolist(), strict=True):
        per_pid[pid] = per_pid.get(pid, 0) + 1
        per_pid_camera[pid, camid] = per_pid_camera.get((pid, camid), 0) + 1
    return np.array(
        [
            per_pid.get(pid, 0) > per_pid_camera.get((pid, camid), 0)
            for pid, camid in zip(q_pids.tolist(), q_camids.tolist(), strict=True)
        ],
        dtype=bool,
    )


def choose_queries(valid: np.ndarray, count: int) -> np.ndarray:
    """``count`` valid query indices spread evenly over the query list (deterministic)."""
    candidates = np.flatnonzero(valid)
    if len(candidates) <= count:
        return candidates
    return candidates[np.linspace(0, len(candidates) - 1, count).round().astype(np.int64)]


def ranked_gallery(
    distances: torch.Tensor,
    q_pid: int,
    q_camid: int,
    g_pids: np.ndarray,
    g_camids: np.ndarray,
    top_k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``top_k`` nearest valid gallery items of one query.

    Args:
        distances: ``(G,)`` distances of the query to the gallery.
        q_pid: The query's identity.
        q_camid: The query's camera.
        g_pids: ``(G,)`` gallery identities.
        g_camids: ``(G,)`` gallery cameras.
        top_k: How many to return (fewer if the gallery is smaller).

    Returns:
        Gallery indices ``(K,)``, best first, and whether each is a match ``(K,)``.
    """
    kept = np.flatnonzero(~((g_pids == q_pid) & (g_camids == q_camid)))
    kept_distances = distances.detach().cpu()[torch.from_numpy(kept)]
    order = torch.sort(kept_distances, stable=True).indices[:top_k].numpy()
    indices = kept[order]
    return indices, g_pids[indices] == q_pid


def resolve_image(path: str, root: Path | None, key: str) -> Path:
    """An image path of a features file, made absolute with ``root`` when it is relative.

    Raises:
        DataFileError: The path is relative and there is no root, or the file does not exist.
    """
    resolved = Path(path)
    if not resolved.is_absolute():
        if root is None:
            raise DataFileError(
                f"{key} holds relative paths ({path}); give the folder they are relative to "
                "(--root)"
            )
        resolved = root / resolved
    if not resolved.is_file():
        raise DataFileError(f"image {resolved} (from {key}) not found")
    return resolved


def _thumbnail(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB").resize(THUMBNAIL_SIZE))
    except (OSError, UnidentifiedImageError) as error:
        raise DataFileError(f"image {path} cannot be read ({error})") from error


def draw_ranked_lists(rows: Sequence[RankedList], out: str | Path, title: str = "") -> Path:
    """Write the picture: one row per ranked list, the query first.

    Args:
        rows: The ranked lists (at least one).
        out: PNG path to write (parent folders are created).
        title: Optional title above the picture.

    Returns:
        ``out``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not rows:
        raise ValueError("no ranked list to draw")
    columns = 1 + max(len(row.gallery_images) for row in rows)
    figure = Figure(figsize=(1.1 * columns + 0.4, 2.3 * len(rows) + (0.4 if title else 0)))
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(rows), columns, squeeze=False)
    for row_axes, row in zip(axes, rows, strict=True):
        cells = [(row.query_image, row.query_label, QUERY_COLOUR, 2)]
        for rank, (image, correct) in enumerate(
            zip(row.gallery_images, row.correct, strict=True), start=1
        ):
            cells.append((image, f"{rank}", CORRECT_COLOUR if correct else WRONG_COLOUR, 4))
        for axis in row_axes:
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_frame_on(False)
        for axis, (image, label, colour, width) in zip(row_axes, cells, strict=False):
            axis.imshow(_thumbnail(image))
            axis.set_frame_on(True)
            for spine in axis.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(width)
            axis.set_xlabel(label, fontsize=8, color=colour)
    if title:
        figure.suptitle(title, fontsize=10)
        # Leave the title's 0.4 inch above the grid (tight_layout would draw the grid over it).
        figure.tight_layout(rect=(0.0, 0.0, 1.0, 1.0 - 0.4 / figure.get_figheight()))
    else:
        figure.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    return out
