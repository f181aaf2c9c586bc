"""Shared helpers of the benchmark parsers: root resolution, file listing and name parsing.

A parser describes the folders it needs as one or more :class:`FolderLayout` and calls
:func:`resolve_layout`, which accepts the dataset folder itself or a parent that holds it under
one of its usual archive names, and otherwise raises a one-line
:class:`~vlreid.errors.DatasetLayoutError` naming the root, the dataset, every path tried and the
expected tree. Parsers list files and parse their basenames only; they never open an image.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vlreid.datasets.manifest import SPLITS, Manifest, ReIDRecord, build_manifest
from vlreid.errors import DataFileError, DatasetLayoutError

logger = logging.getLogger(__name__)

PID_CAMERA_PATTERN = re.compile(r"^(-?\d+)_c(\d+)")
"""``PPPP_cC...``: the pid and 1-based camera at the start of Market-style basenames."""


@dataclass(frozen=True)
class FolderLayout:
    """The entries a dataset folder must hold, and where that folder usually sits.

    Attributes:
        name: Short name of the layout, e.g. ``MSMT17_V1``.
        archive_names: Relative paths under which the dataset folder is found in a parent
            (official archive names first), e.g. ``("Market-1501-v15.09.15", "Market-1501")``.
        required: Entries (folders or files) that must all exist in the dataset folder.
        tree: One-line drawing of the expected content, e.g.
            ``"{bounding_box_train,query,bounding_box_test}/0001_c1s1_000151_01.jpg"``.
    """

    name: str
    archive_names: tuple[str, ...]
    required: tuple[str, ...]
    tree: str

    def drawing(self) -> str:
        """The expected tree, under the first archive name when there is one."""
        prefix = f"{self.archive_names[0]}/" if self.archive_names else ""
        return prefix + self.tree


def _missing_entries(folder: Path, layout: FolderLayout) -> list[str]:
    return [entry for entry in layout.required if not (folder / entry).exists()]


def resolve_layout(
    dataset: str, root: str | Path, layouts: Sequence[FolderLayout]
) -> tuple[Path, FolderLayout]:
    """Find the dataset folder under ``root``.

    For each layout in order, ``root`` itself is tried, then ``root / name`` for each of the
    layout's archive names; the first folder holding every required entry wins.

    Args:
        dataset: Dataset name, for the error message.
        root: The dataset folder or a parent of it.
        layouts: The accepted layouts, preferred first.

    Returns:
        The dataset folder and the layout it matched.

    Raises:
        DatasetLayoutError: Nothing matched. The one-line message names the root, the dataset,
            every path tried, the closest candidate's missing entries and the expected tree.
    """
    root = Path(root).expanduser()
    tried: list[Path] = []
    closest: tuple[int, Path, list[str]] | None = None
    for layout in layouts:
        for candidate in (root, *(root / name for name in layout.archive_names)):
            if candidate not in tried:
                tried.append(candidate)
            if not candidate.is_dir():
                continue
            missing = _missing_entries(candidate, layout)
            if not missing:
                return candidate, layout
            found = len(layout.required) - len(missing)
            if found and (closest is None or found > closest[0]):
                closest = (found, candidate, missing)
    status = "does not exist" if not root.exists() else "matches no known layout"
    hint = ""
    if closest is not None:
        hint = f"; closest: {closest[1]} lacks {', '.join(closest[2])}"
    expected = " or ".join(f"{root}/{layout.drawing()}" for layout in layouts)
    raise DatasetLayoutError(
        f"no {dataset} dataset under {root} ({status}): tried "
        f"{', '.join(str(path) for path in tried)}{hint}; expected tree: {expected} "
        f"(or a root holding those entries directly)"
    )


def list_image_names(directory: Path, suffixes: tuple[str, ...] = (".jpg",)) -> list[str]:
    """Sorted basenames of the image files directly in ``directory``.

    Hidden files (``.DS_Store``, ``._x.jpg``) and other suffixes (``Thumbs.db``) are ignored.
    A name such as ``x.jpg.jpg`` ends in ``.jpg`` and is kept, as in the reference toolkits.

    Raises:
        DatasetLayoutError: ``directory`` is not a readable folder.
    """
    try:
        with os.scandir(directory) as entries:
            names = [
                entry.name
                for entry in entries
                if not entry.name.startswith(".")
                and entry.name.lower().endswith(suffixes)
                and entry.is_file()
            ]
    except OSError as error:
        raise DatasetLayoutError(f"cannot list image folder {directory}: {error}") from error
    return sorted(names)


def parse_pid_camid(
    name: str, where: Path, camera_range: tuple[int, int | None]
) -> tuple[int, int]:
    """Pid and 0-based camera from a basename such as ``0002_c1s1_000451_03.jpg``.

    Args:
        name: Basename (never a path: a parent folder named ``0001_c1`` must not matter).
        where: Folder or list file the name comes from, for the error message.
        camera_range: Inclusive 1-based camera bounds; ``None`` as upper bound means no bound.

    Raises:
        DataFileError: The name does not match, or the camera is out of range.
    """
    match = PID_CAMERA_PATTERN.match(name)
    if match is None:
        raise DataFileError(
            f"{where / name}: file name does not start with PID_cCAMERA (e.g. 0002_c1...)"
        )
    pid, camera = int(match.group(1)), int(match.group(2))
    low, high = camera_range
    if camera < low or (high is not None and camera > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise DataFileError(f"{where / name}: camera {camera} outside {bounds}")
    return pid, camera - 1


def records_from_folder(
    dataset: str,
    dataset_root: Path,
    subfolder: str,
    split: str,
    camera_range: tuple[int, int | None],
    suffixes: tuple[str, ...] = (".jpg",),
    drop_junk: bool = False,
) -> list[ReIDRecord]:
    """Records of one Market-style split folder (``PPPP_cC...`` basenames).

    Args:
        dataset: Dataset name stored in the records.
        dataset_root: The resolved dataset folder; ``relpath`` is relative to it.
        subfolder: Split folder name, e.g. ``bounding_box_test``.
        split: ``train``, ``query`` or ``gallery``.
        camera_range: Inclusive 1-based camera bounds (upper ``None``: unbounded).
        suffixes: Image file suffixes to list.
        drop_junk: Drop pid ``-1`` (Market-1501 junk boxes).
    """
    directory = dataset_root / subfolder
    records = []
    for name in list_image_names(directory, suffixes):
        pid, camid = parse_pid_camid(name, directory, camera_range)
        if drop_junk and pid == -1:
            continue
        records.append(ReIDRecord(f"{subfolder}/{name}", pid, camid, split, dataset))
    return records


def read_list(path: Path, columns: int) -> list[list[str]]:
    """Rows of a whitespace-separated list file (LF or CRLF), blank lines skipped.

    Args:
        path: The list file.
        columns: Minimum number of fields per row.

    Raises:
        DataFileError: The file is missing or unreadable, or a row has too few fields.
    """
    if not path.is_file():
        raise DataFileError(f"list file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise DataFileError(f"cannot read list file {path}: {error}") from error
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < columns:
            raise DataFileError(
                f"{path}:{number}: expected {columns} fields per line, got {line.strip()!r}"
            )
        rows.append(fields)
    return rows


def parse_int(value: str, path: Path, what: str) -> int:
    """``int(value)``, raising :class:`DataFileError` naming ``path`` and ``what`` on failure."""
    try:
        return int(value)
    except ValueError:
        raise DataFileError(f"{path}: {what} {value!r} is not an integer") from None


def check_files_exist(dataset_root: Path, relpaths: Iterable[str], source: Path) -> None:
    """Check that listed images exist, listing each folder once (no per-file ``stat``).

    Raises:
        DataFileError: Some files are missing; the message gives the count and examples.
    """
    by_folder: dict[str, list[str]] = {}
    for relpath in relpaths:
        folder, _, name = relpath.rpartition("/")
        by_folder.setdefault(folder, []).append(name)
    missing: list[str] = []
    for folder, names in by_folder.items():
        directory = dataset_root / folder
        absent = set(names).difference(os.listdir(directory) if directory.is_dir() else ())
        missing.extend(f"{folder}/{name}" if folder else name for name in sorted(absent))
    if missing:
        examples = ", ".join(missing[:3])
        raise DataFileError(
            f"{len(missing)} images listed in {source} are missing under {dataset_root} "
            f"(e.g. {examples})"
        )


def finish_manifest(records: Sequence[ReIDRecord], dataset_root: Path) -> Manifest:
    """The :class:`Manifest` of ``records`` under the resolved dataset folder ``dataset_root``.

    An empty split is logged as a warning.
    """
    manifest = Manifest(build_manifest(records), Path(dataset_root))
    counts = manifest.frame["split"].value_counts()
    for split in SPLITS:
        if counts.get(split, 0) == 0:
            logger.warning("%s: the %s split is empty", dataset_root, split)
    return manifest
