"""The features file that ``reid evaluate --features`` reads: a NumPy ``.npz`` archive.

Keys (Q queries, G gallery items, D feature dimensions):

- ``query_features`` ``(Q, D)`` and ``gallery_features`` ``(G, D)``: float features.
- ``query_pids`` ``(Q,)`` and ``gallery_pids`` ``(G,)``: integer identities, as the dataset names
  them (distractors keep theirs, e.g. 0).
- ``query_camids`` ``(Q,)`` and ``gallery_camids`` ``(G,)``: integer cameras.
- optional ``query_paths`` ``(Q,)`` and ``gallery_paths`` ``(G,)``: image paths (strings),
  absolute or relative to a root folder; only the ranked-list picture needs them.

Write one with :func:`save_feature_file` (or ``np.savez`` with these keys); the arrays returned
by :func:`vlreid.evaluation.features.checkpoint_features` have exactly these keys.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vlreid.errors import DataFileError

REQUIRED_KEYS: tuple[str, ...] = (
    "query_features",
    "gallery_features",
    "query_pids",
    "gallery_pids",
    "query_camids",
    "gallery_camids",
)
OPTIONAL_KEYS: tuple[str, ...] = ("query_paths", "gallery_paths")


@dataclass(frozen=True)
class EvaluationInputs:
    """Validated query and gallery features with their labels.

    Attributes:
        query_features: ``(Q, D)`` float32.
        gallery_features: ``(G, D)`` float32.
        query_pids: ``(Q,)`` int64.
        gallery_pids: ``(G,)`` int64.
        query_camids: ``(Q,)`` int64.
        gallery_camids: ``(G,)`` int64.
        query_paths: Q image paths, or ``None``.
        gallery_paths: G image paths, or ``None``.
        source: Where the arrays came from (a file path), for messages.
    """

    query_features: np.ndarray
    gallery_features: np.ndarray
    query_pids: np.ndarray
    gallery_pids: np.ndarray
    query_camids: np.ndarray
    gallery_camids: np.ndarray
    query_paths: list[str] | None = None
    gallery_paths: list[str] | None = None
    source: str = "features"

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], source: str) -> EvaluationInputs:
        """Check the keys, shapes and types of ``arrays`` (see the module's table).

        Raises:
            DataFileError: A key is missing, a shape or type is wrong, lengths disagree, or the
                query or gallery is empty; the message names ``source``.
        """
        missing = [key for key in REQUIRED_KEYS if key not in arrays]
        if missing:
            raise DataFileError(
                f"{source}: missing key(s) {', '.join(missing)}; a features file holds "
                f"{', '.join(REQUIRED_KEYS)} (and optionally {', '.join(OPTIONAL_KEYS)})"
            )
        values: dict[str, object] = {}
        for side in ("query", "gallery"):
            features = np.asarray(arrays[f"{side}_features"])
            if features.ndim != 2 or not np.issubdtype(features.dtype, np.number):
                raise DataFileError(
                    f"{source}: {side}_features must be a 2-D numeric array ({side[0].upper()}, D),"
                    f" got shape {features.shape} of {features.dtype}"
                )
            if features.shape[0] == 0:
                raise DataFileError(f"{source}: {side}_features is empty (no {side} item)")
            count = features.shape[0]
            values[f"{side}_features"] = features.astype(np.float32, copy=False)
            for label in ("pids", "camids"):
                key = f"{side}_{label}"
                labels = np.asarray(arrays[key])
                if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
                    raise DataFileError(
                        f"{source}: {key} must be {count} integers (one per row of "
                        f"{side}_features), got shape {labels.shape} of {labels.dtype}"
                    )
                values[key] = labels.astype(np.int64, copy=False)
            key = f"{side}_paths"
            if key in arrays:
                paths = np.asarray(arrays[key])
                if paths.shape != (count,) or paths.dtype.kind not in "US":
                    raise DataFileError(
                        f"{source}: {key} must be {count} strings, got shape {paths.shape} "
                        f"of {paths.dtype}"
                    )
                values[key] = [str(path) for path in paths.tolist()]
        query_dimension = np.shape(values["query_features"])[1]
        gallery_dimension = np.shape(values["gallery_features"])[1]
        if query_dimension != gallery_dimension:
            raise DataFileError(
                f"{source}: query features have {query_dimension} dimensions but gallery "
                f"features {gallery_dimension}"
            )
        return cls(**values, source=source)  # type: ignore[arg-type]

    def as_arrays(self) -> dict[str, np.ndarray]:
        """The arrays under the keys of a features file."""
        arrays = {key: getattr(self, key) for key in REQUIRED_KEYS}
        for key in OPTIONAL_KEYS:
            if getattr(self, key) is not None:
                arrays[key] = np.array(getattr(self, key))
        return arrays


def load_feature_file(path: str | Path) -> EvaluationInputs:
    """Read and validate a features file.

    Raises:
        DataFileError: The file is missing or not an ``.npz`` archive, or its arrays are invalid.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(
            f"{path}: no such features file (expected an .npz with {', '.join(REQUIRED_KEYS)})"
        )
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataFileError(f"{path}: holds a single array, expected an .npz archive")
        with loaded as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise DataFileError(f"{path}: cannot be read as an .npz archive ({error})") from error
    return EvaluationInputs.from_arrays(arrays, source=str(path))


def save_feature_file(path: str | Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Validate ``arrays`` and write them as a features file (atomically: temporary + rename).

    Returns:
        ``path``.
    """
    path = Path(path)
    inputs = EvaluationInputs.from_arrays(arrays, source=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp.npz")
    np.savez(temporary, **inputs.as_arrays())
    temporary.replace(path)
    return path
