"""Where a run came from: ``provenance.json`` in the run folder, and its key fields in the weights.

:func:`collect_provenance` records what is needed to tell two runs apart or to redo one:

- ``code``: the git commit and dirty flag of the checkout the package runs from (None outside a
  git work tree) and a sha256 over the package's source files (``*.py``, ``*.toml``, ``*.jinja``
  under ``src/vlreid``, by relative path and content), which also identifies an installed wheel;
- ``versions``: python, torch, open_clip, transformers, accelerate and vlreid;
- ``hardware``: device (and GPU name), world size, resolved mixed precision;
- ``training``: seed and effective batch (``data.batch_size`` x processes x accumulation steps);
- ``data``: a sha256 over the manifest rows (split, relpath, pid, camid, file size, in manifest
  order) and one over the captions read (shard names, then ``relpath`` and ``caption`` of every
  row, in order), with their counts.

``command`` is the command line of the process (``reid train CONFIG --run-dir ...``).
``digest`` is the sha256 of the canonical JSON of everything else but the data paths and the
command, so two
runs with equal digests ran the same code on the same data with the same settings, wherever the
data lay. :func:`provenance_metadata`
turns the digest and the key fields into ``model.safetensors`` metadata (``reid.provenance.*``),
which ``reid evaluate --format json`` prints. Nothing here imports transformers or open_clip: their
versions are read from the installed distributions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlreid.model.weights import PROVENANCE_PREFIX as METADATA_PREFIX

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

PROVENANCE_FILE = "provenance.json"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # src/vlreid
SOURCE_SUFFIXES: tuple[str, ...] = (".py", ".toml", ".jinja")
DISTRIBUTIONS: dict[str, str] = {
    "torch": "torch",
    "open_clip": "open_clip_torch",
    "transformers": "transformers",
    "accelerate": "accelerate",
    "vlreid": "vlreid",
}
METADATA_FIELDS: dict[str, tuple[str, str]] = {  # metadata key -> (section, field)
    "git_commit": ("code", "git_commit"),
    "git_dirty": ("code", "git_dirty"),
    "source_sha256": ("code", "source_sha256"),
    "manifest_sha256": ("data", "manifest_sha256"),
    "captions_sha256": ("data", "captions_sha256"),
    "seed": ("training", "seed"),
    "effective_batch": ("training", "effective_batch"),
    "world_size": ("hardware", "world_size"),
    "precision": ("hardware", "precision"),
}


def source_sha256(package_dir: Path = PACKAGE_DIR) -> str:
    """sha256 over the package's source files: relative path, NUL, content, for each, sorted."""
    digest = hashlib.sha256()
    files = sorted(
        path
        for path in package_dir.rglob("*")
        if path.suffix in SOURCE_SUFFIXES and "__pycache__" not in path.parts and path.is_file()
    )
    for path in files:
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def git_state(directory: Path = PACKAGE_DIR) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git work tree holding ``directory``; ``(None, None)`` outside one.

    ``dirty``: modified or untracked files in the work tree (``git status --porcelain``). A git
    tree that does not track the package (a virtual environment inside another project) counts
    as none.
    """

    def git(*arguments: str) -> str | None:
        try:
            finished = subprocess.run(
                ["git", "-C", str(directory), *arguments],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return finished.stdout.strip() if finished.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None or git("ls-files", "--error-unmatch", "__init__.py") is None:
        return None, None  # not a git tree, or one that does not track this package
    status = git("status", "--porcelain", "--untracked-files=normal")
    return commit, bool(status) if status is not None else None


def package_versions() -> dict[str, str | None]:
    """Versions of python and of the installed distributions of :data:`DISTRIBUTIONS`."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name, distribution in DISTRIBUTIONS.items():
        try:
            versions[name] = version(distribution)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def manifest_sha256(manifest: pd.DataFrame, root: Path) -> str:
    """sha256 over the rows ``split, relpath, pid, camid, file size`` in manifest order.

    A file that cannot be read counts with size -1 (the digest still changes when it appears).
    """
    digest = hashlib.sha256()
    for split, relpath, pid, camid in manifest[["split", "relpath", "pid", "camid"]].itertuples(
        index=False
    ):
        try:
            size = os.stat(root / relpath).st_size
        except OSError:
            size = -1
        digest.update(f"{split}\t{relpath}\t{int(pid)}\t{int(camid)}\t{size}\n".encode())
    return digest.hexdigest()


def caption_files(folder: Path) -> list[Path]:
    """The shard files a caption reader takes: every file not named ``.*`` or ``_*``, sorted."""
    return sorted(
        path for path in folder.iterdir() if path.is_file() and not path.name.startswith((".", "_"))
    )


def captions_sha256(paths: Iterable[Path]) -> str:
    """sha256 over the captions that training reads: for each shard (in the given order) its
    name, then one JSON line ``[relpath, caption]`` per row, in file order.

    The Parquet bytes are not hashed: they carry writer metadata (pandas ``attrs`` with the
    dataset root, library versions) that differs between two copies of the same captions.

    Raises:
        DataFileError: A shard that cannot be read or lacks ``relpath``/``caption``.
    """
    import pyarrow.parquet as pq

    from vlreid.errors import DataFileError

    digest = hashlib.sha256()
    for path in paths:
        try:
            table = pq.read_table(path, columns=["relpath", "caption"])
        except (OSError, KeyError, ValueError) as error:
            raise DataFileError(f"cannot read the caption shard {path}: {error}") from error
        digest.update(path.name.encode() + b"\0")
        columns = (table.column("relpath").to_pylist(), table.column("caption").to_pylist())
        for relpath, caption in zip(*columns, strict=True):
            digest.update(json.dumps([relpath, caption]).encode() + b"\n")
    return digest.hexdigest()


def canonical_digest(record: dict[str, Any]) -> str:
    """sha256 of ``record`` as JSON with sorted keys and no whitespace."""
    text = json.dumps(record, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def collect_provenance(
    config: Any,
    manifest: pd.DataFrame,
    root: Path,
    device: str,
    world_size: int,
    precision: str,
) -> dict[str, Any]:
    """The provenance record of a run (module docstring); ``digest`` is over the rest.

    Args:
        config: The run's :class:`~vlreid.config.RunConfig`.
        manifest: The run's dataset manifest.
        root: The dataset folder that ``relpath`` is relative to.
        device: The training device (``cpu``, ``cuda:0``...).
        world_size: Number of processes.
        precision: Resolved mixed precision (``no``, ``bf16``, ``fp16``).
    """
    import torch

    commit, dirty = git_state()
    device_name = str(device)
    if device_name.startswith("cuda") and torch.cuda.is_available():
        device_name = f"{device_name} ({torch.cuda.get_device_name(torch.device(device))})"
    captions = Path(config.data.captions) if config.data.captions else None
    shards = caption_files(captions) if captions is not None and captions.is_dir() else []
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    program = "reid" if program in ("__main__.py", "-c") else program
    record: dict[str, Any] = {
        "command": shlex.join([program, *sys.argv[1:]]),
        "code": {"git_commit": commit, "git_dirty": dirty, "source_sha256": source_sha256()},
        "versions": package_versions(),
        "hardware": {"device": device_name, "world_size": world_size, "precision": precision},
        "training": {
            "seed": config.train.seed,
            "effective_batch": config.data.batch_size
            * world_size
            * config.train.gradient_accumulation_steps,
            "gradient_accumulation_steps": config.train.gradient_accumulation_steps,
            "method": config.method.name,
        },
        "data": {
            "dataset": config.data.dataset,
            "root": str(root),
            "manifest_rows": len(manifest),
            "manifest_sha256": manifest_sha256(manifest, Path(root)),
            "captions": str(captions) if captions is not None else None,
            "caption_files": len(shards),
            "captions_sha256": captions_sha256(shards) if captions is not None else None,
        },
    }
    paths = {"root", "captions"}  # where the data lies, and how the run was started, are
    hashed = {  # recorded but are not part of the digest
        **{key: value for key, value in record.items() if key != "command"},
        "data": {key: value for key, value in record["data"].items() if key not in paths},
    }
    return {"digest": canonical_digest(hashed), **record}


def write_provenance(run_dir: Path, record: dict[str, Any]) -> Path:
    """Write ``provenance.json`` atomically; a resumed run whose provenance changed (other code,
    data or hardware) keeps the earlier records under ``earlier``, oldest first."""
    path = Path(run_dir) / PROVENANCE_FILE
    earlier: list[dict[str, Any]] = []
    if path.is_file():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = {}
        earlier = list(previous.pop("earlier", []))
        if previous and previous.get("digest") != record["digest"]:
            logger.warning("%s: the run resumes with other code, data or hardware", path)
            earlier.append(previous)
    output = {**record, "earlier": earlier} if earlier else record
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(output, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path


def provenance_metadata(record: dict[str, Any]) -> dict[str, str]:
    """``model.safetensors`` metadata: ``reid.provenance.digest`` and the key fields, each as JSON
    (:func:`vlreid.model.weights.checkpoint_provenance` decodes them)."""
    metadata = {f"{METADATA_PREFIX}.digest": json.dumps(record["digest"])}
    for key, (section, field) in METADATA_FIELDS.items():
        metadata[f"{METADATA_PREFIX}.{key}"] = json.dumps(record[section][field])
    return metadata


def record_provenance(run_dir: Path, config: Any, data: Any, accelerator: Any) -> dict[str, str]:
    """On the main process: collect and write ``provenance.json`` for the run's data
    (a :class:`~vlreid.training.data.RunData`) and ``accelerate`` state.

    Returns:
        Its :func:`provenance_metadata` on the main process; ``{}`` on the others.
    """
    from vlreid.training.precision import resolve_mixed_precision

    if not accelerator.is_main_process:
        return {}
    record = collect_provenance(
        config,
        data.manifest,
        data.root,
        str(accelerator.device),
        accelerator.num_processes,
        resolve_mixed_precision(config.train.mixed_precision, config.train.cpu),
    )
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    write_provenance(run_dir, record)
    return provenance_metadata(record)
