"""CUHK03 under the new protocol (CUHK03-NP), labeled or detected boxes.

Reference:
    Li et al. DeepReID: Deep Filter Pairing Neural Network for Person Re-identification.
    CVPR 2014.
    Zhong et al. Re-ranking Person Re-identification with k-reciprocal Encoding. CVPR 2017
    (the new protocol: 767 train ids, 700 test ids).

URL: `<https://github.com/zhunzhong07/person-re-ranking/tree/master/CUHK03-NP>`_

Dataset statistics:
    - identities: 767 (train) + 700 (test).
    - images, labeled: 7,368 (train) + 1,400 (query) + 5,328 (gallery).
    - images, detected: 7,365 (train) + 1,400 (query) + 5,332 (gallery).
    - cameras: 2 views per camera pair (camid 0 and 1).
"""

from __future__ import annotations

from pathlib import Path

from vlreid.datasets.layout import (
    FolderLayout,
    check_files_exist,
    finish_manifest,
    resolve_layout,
)
from vlreid.datasets.manifest import Manifest, ReIDRecord
from vlreid.datasets.market1501 import SPLIT_FOLDERS, parse_market_style
from vlreid.errors import DataFileError, DatasetLayoutError, ReIDError

VARIANTS: tuple[str, ...] = ("labeled", "detected")
_SPLIT_INDEX_FIELDS = {"train": "train_idx", "query": "query_idx", "gallery": "gallery_idx"}


def _folder_layout(variant: str) -> FolderLayout:
    """Zhong's CUHK03-NP release: Market-style folders, names ``PPPP_cC_N.png``."""
    return FolderLayout(
        name=f"cuhk03-np/{variant}",
        archive_names=(variant, f"cuhk03-np/{variant}", f"CUHK03-NP/{variant}"),
        required=tuple(SPLIT_FOLDERS.values()),
        tree="{bounding_box_train,query,bounding_box_test}/0001_c1_1.png",
    )


def _torchreid_layout(variant: str) -> FolderLayout:
    """torchreid / fast-reid: extracted images plus the new-protocol split ``.mat``."""
    config = f"cuhk03_new_protocol_config_{variant}.mat"
    return FolderLayout(
        name=f"cuhk03 images_{variant}",
        archive_names=("cuhk03",),
        required=(f"images_{variant}", config),
        tree=f"{{images_{variant}/1_001_1_01.png, {config}}}",
    )


def _records_from_config(dataset_root: Path, variant: str) -> list[ReIDRecord]:
    """Records of torchreid's layout, read from ``cuhk03_new_protocol_config_<variant>.mat``.

    The file holds ``filelist`` (basenames ``A_PPP_V_II.png``: camera pair, person, view 1/2,
    image), ``labels`` (the pid, 1..1467) and 1-based ``train_idx``/``query_idx``/``gallery_idx``.
    As in torchreid, the camera is the view field of the basename.
    """
    from scipy.io import loadmat  # heavy import, only for this layout

    config_path = dataset_root / f"cuhk03_new_protocol_config_{variant}.mat"
    try:
        config = loadmat(config_path)
        names = [str(item.ravel()[0]) for item in config["filelist"].ravel()]
        labels = [int(label) for label in config["labels"].ravel()]
        indices = {
            split: [int(index) - 1 for index in config[field].ravel()]
            for split, field in _SPLIT_INDEX_FIELDS.items()
        }
    except (OSError, ValueError, KeyError, IndexError, NotImplementedError) as error:
        raise DataFileError(
            f"cannot read {config_path}: {error!r} (expected the CUHK03-NP new-protocol config "
            f"with filelist, labels, train_idx, query_idx, gallery_idx)"
        ) from error
    image_folder = f"images_{variant}"
    records = []
    for split, split_indices in indices.items():
        for index in split_indices:
            if not 0 <= index < len(names):
                raise DataFileError(f"{config_path}: {split} index {index + 1} out of range")
            name = names[index]
            parts = name.split("_")
            if len(parts) != 4 or parts[2] not in ("1", "2"):
                raise DataFileError(
                    f"{config_path}: file name {name!r} is not CAMPAIR_PID_VIEW_IMAGE.png "
                    f"(e.g. 1_001_1_01.png)"
                )
            records.append(
                ReIDRecord(
                    f"{image_folder}/{name}", labels[index], int(parts[2]) - 1, split, "cuhk03"
                )
            )
    check_files_exist(dataset_root, (record.relpath for record in records), config_path)
    return records


def parse_cuhk03(root: str | Path, variant: str = "labeled") -> Manifest:
    """Parse CUHK03-NP (the new protocol of Zhong et al.).

    Two layouts are accepted, tried in this order:

    1. Zhong's CUHK03-NP release (as reid-strong-baseline and its descendants read it):
       ``cuhk03-np/<variant>/{bounding_box_train,query,bounding_box_test}/PPPP_cC_N.png``;
       the pid and the view (camera 1 or 2) come from the basename.
    2. torchreid's and fast-reid's folder: ``cuhk03/images_<variant>/`` (images extracted from
       ``cuhk-03.mat``, named ``A_PPP_V_II.png``) with ``cuhk03_new_protocol_config_<variant>.mat``
       beside it (needs scipy); pids are the config's labels, the camera is the view field ``V``.

    Args:
        root: ``cuhk03-np/<variant>``, ``cuhk03-np``, a folder holding ``cuhk03-np``, or
            torchreid's ``cuhk03`` folder (or its parent).
        variant: ``labeled`` (hand-drawn boxes) or ``detected`` (DPM boxes).

    Returns:
        The manifest (DESIGN 3.1) with its resolved dataset folder.

    Raises:
        ReIDError: Unknown variant.
        DatasetLayoutError: No CUHK03-NP folder for ``variant`` under ``root``, or ``root`` is
            the folder of the other variant.
        DataFileError: A malformed file name or split config.
    """
    if variant not in VARIANTS:
        raise ReIDError(f"unknown cuhk03 variant {variant!r}; valid: {', '.join(VARIANTS)}")
    root_path = Path(root).expanduser()
    if root_path.name in VARIANTS and root_path.name != variant:
        raise DatasetLayoutError(
            f"{root_path} holds the {root_path.name} boxes but variant={variant} was asked: "
            f"pass {root_path.parent} (or {root_path.parent / variant}) as root"
        )
    layouts = [_folder_layout(variant), _torchreid_layout(variant)]
    dataset_root, layout = resolve_layout("cuhk03", root_path, layouts)
    if layout is layouts[0]:
        return parse_market_style(
            "cuhk03", dataset_root, camera_range=(1, 2), suffixes=(".png",), drop_junk=False
        )
    return finish_manifest(_records_from_config(dataset_root, variant), dataset_root)
