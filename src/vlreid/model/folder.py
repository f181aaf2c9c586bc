"""The shareable model folder, on disk or on the Hugging Face Hub, and where :func:`load_model`
finds the weights.

A model folder (``reid export --format folder``) holds:

=====================  ==========================================================
``model.safetensors``  the weights with their metadata (:mod:`vlreid.model.weights`)
``config.json``        the same facts for people and tools: ``format``, ``backbone``,
                       ``preprocessing``, ``feature_dim``, ``method``, ``datasets``, ``run_config``,
                       ``provenance`` and the package version
``README.md``          the model card
=====================  ==========================================================

:func:`resolve_weights` turns what a user passes to ``load_model`` into a ``model.safetensors``
path: the file itself, a folder holding it (``config.json`` beside it must agree with its
metadata), or ``owner/name[@revision]``, a Hub repo of the same layout fetched with
``huggingface_hub.snapshot_download`` (which honours ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from vlreid.errors import DataFileError

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
FOLDER_FORMAT = "vlreid-model"
HUB_FILES: tuple[str, ...] = (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


def folder_config(metadata: dict[str, str], feature_dim: int) -> dict[str, Any]:
    """``config.json`` of a model folder, from the metadata of its ``model.safetensors``."""
    run_config = json.loads(metadata.get("reid.config") or "{}")
    provenance = {
        key.removeprefix("reid.provenance."): json.loads(value)
        for key, value in sorted(metadata.items())
        if key.startswith("reid.provenance.")
    }
    return {
        "format": FOLDER_FORMAT,
        "weights": WEIGHTS_NAME,
        "backbone": json.loads(metadata["reid.backbone"]),
        "preprocessing": json.loads(metadata["reid.preprocessing"]),
        "feature_dim": feature_dim,
        "l2_normalized": True,
        "method": run_config.get("method", {}).get("name"),
        "datasets": [run_config["data"]["dataset"]] if run_config.get("data") else [],
        "run_config": run_config,
        "provenance": provenance,
        "vlreid_version": metadata.get("reid.version"),
    }


def check_folder_config(folder: Path, metadata: dict[str, str]) -> None:
    """Refuse a ``config.json`` whose backbone or preprocessing differ from the weights' metadata.

    Raises:
        DataFileError: Unreadable ``config.json``, another format, or a mismatch.
    """
    path = folder / CONFIG_NAME
    if not path.is_file():
        return
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataFileError(f"cannot read {path}: {error}") from error
    if not isinstance(config, dict) or config.get("format") != FOLDER_FORMAT:
        raise DataFileError(
            f"{path} is not a vlreid model folder config (format {FOLDER_FORMAT!r})"
        )
    for key in ("backbone", "preprocessing"):
        if key in config and config[key] != json.loads(metadata[f"reid.{key}"]):
            raise DataFileError(
                f"{path}: {key!r} differs from the metadata of {folder / WEIGHTS_NAME}; the "
                "weights' metadata is what loads: re-export the folder"
            )


def hub_folder(repo: str) -> Path:
    """Download (or find in the Hub cache) the model-folder files of ``owner/name[@revision]``.

    Raises:
        DataFileError: huggingface_hub is missing, or the repo/revision cannot be found
            (offline without a cached copy, unknown repo, no network).
    """
    try:
        from huggingface_hub import snapshot_download
    except ImportError as error:
        raise DataFileError(
            f"{repo!r} is not a local file or folder, and huggingface_hub (needed to load a Hub "
            "repo) is not installed: pip install huggingface_hub"
        ) from error
    repo_id, _, revision = repo.partition("@")
    try:
        folder = snapshot_download(
            repo_id, revision=revision or None, allow_patterns=list(HUB_FILES)
        )
    except Exception as error:  # huggingface_hub raises many error types (HTTP, offline, cache)
        raise DataFileError(
            f"no local file or folder {repo!r}, and it could not be loaded as a Hugging Face Hub "
            f"repo: {type(error).__name__}: {error}"
        ) from error
    return Path(folder)


def resolve_weights(source: str | Path) -> Path:
    """The ``model.safetensors`` that ``source`` names: that file, a model folder, or a Hub repo.

    Raises:
        DataFileError: A folder without ``model.safetensors``, or a name that is neither a local
            path nor a Hub repo id that can be fetched.
    """
    path = Path(source)
    if path.is_dir():
        weights = path / WEIGHTS_NAME
        if not weights.is_file():
            raise DataFileError(
                f"{path} is a folder without {WEIGHTS_NAME}: expected a model folder"
            )
        return weights
    if path.exists() or not HUB_ID.match(str(source)):
        return path  # a file, or a missing path that read_metadata reports
    weights = hub_folder(str(source)) / WEIGHTS_NAME
    if not weights.is_file():
        raise DataFileError(f"Hub repo {source!r} has no {WEIGHTS_NAME}: not a vlreid model folder")
    return weights
