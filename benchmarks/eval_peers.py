"""The peers of benchmarks/evaluation.py, fetched from PyPI and built in a temporary folder.

* torchreid 0.2.5 (``torchreid/reid/metrics/rank.py``): ``evaluate_rank``, numpy, and its Cython
  ``rank_cylib`` when the sdist has the ``.pyx`` to build it from.
* fast-reid 1.4.0 (``fastreid/evaluation/rank_cylib/rank_cy.pyx``): ``evaluate_cy``, Cython.

``pip download --no-binary :all: --no-deps`` fetches the sdists; Cython is installed with
``pip install --target`` into the same folder and the extension is built there with setuptools.
Nothing is vendored: the folder is deleted after the run unless ``--peers-dir`` names one to keep.
A peer that cannot be fetched or built is reported with the reason, and the others still run.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

SDISTS = {"torchreid": "torchreid==0.2.5", "fastreid": "fastreid==1.4.0"}
TORCHREID_RANK = "torchreid-0.2.5/torchreid/reid/metrics/rank.py"
TORCHREID_CYLIB = "torchreid-0.2.5/torchreid/reid/metrics/rank_cylib"
FASTREID_CYLIB = "fastreid-1.4.0/fastreid/evaluation/rank_cylib"
BUILD = (
    "import numpy; from setuptools import Extension, setup; from Cython.Build import cythonize; "
    "setup(ext_modules=cythonize([Extension('rank_cy', ['rank_cy.pyx'], "
    "include_dirs=[numpy.get_include()])], quiet=True), "
    "script_args=['build_ext', '--inplace', '-q'])"
)


@dataclass
class PeerStatus:
    """What was built in a peers folder (paths to load, or why a peer is missing)."""

    folder: Path
    modules: dict[str, str] = field(default_factory=dict)
    """Peer name -> path of the file to import (``.py`` or the built ``.so``)."""
    missing: dict[str, str] = field(default_factory=dict)
    """Peer name -> the reason it is not measured."""


def _run(command: list[str], cwd: Path | None = None, env: dict | None = None) -> str | None:
    """None on success, else the last lines of the command's output."""
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode == 0:
        return None
    return " ".join((done.stdout + done.stderr).strip().splitlines()[-3:])[-300:]


def _cython(folder: Path) -> str | None:
    target = folder / "cython"
    if (target / "Cython").is_dir():
        return None
    pip = [sys.executable, "-m", "pip", "install", "-q", "--target", str(target), "cython"]
    return _run(pip)


def _build(cylib: Path, folder: Path) -> tuple[str | None, str | None]:
    """(path of the built module, error)."""
    built = glob.glob(str(cylib / "rank_cy*.so"))
    if built:
        return built[0], None
    if not (cylib / "rank_cy.pyx").is_file():
        return None, f"the sdist has no {cylib.name}/rank_cy.pyx to build (only setup.py)"
    error = _cython(folder)
    if error:
        return None, f"pip install cython failed: {error}"
    env = {**os.environ, "PYTHONPATH": str(folder / "cython")}
    error = _run([sys.executable, "-c", BUILD], cwd=cylib, env=env)
    built = glob.glob(str(cylib / "rank_cy*.so"))
    if error or not built:
        return None, f"Cython build failed: {error}"
    return built[0], None


def prepare(folder: Path) -> PeerStatus:
    """Download, unpack and build the peers in ``folder`` (work already there is reused)."""
    folder.mkdir(parents=True, exist_ok=True)
    status = PeerStatus(folder)
    for name, requirement in SDISTS.items():
        archives = glob.glob(str(folder / f"{name}-*.tar.gz"))
        if not archives:
            download = [sys.executable, "-m", "pip", "download", "-q", "--no-binary", ":all:"]
            error = _run([*download, "--no-deps", requirement, "-d", str(folder)])
            archives = glob.glob(str(folder / f"{name}-*.tar.gz"))
            if error or not archives:
                status.missing[name] = f"pip download {requirement} failed: {error}"
                continue
        with tarfile.open(archives[0]) as archive:
            archive.extractall(folder, filter="data")
    if "torchreid" not in status.missing:
        status.modules["torchreid"] = str(folder / TORCHREID_RANK)
        path, error = _build(folder / TORCHREID_CYLIB, folder)
        if path:
            status.modules["torchreid-cython"] = path
        else:
            status.missing["torchreid-cython"] = error or "not built"
    if "fastreid" not in status.missing:
        path, error = _build(folder / FASTREID_CYLIB, folder)
        if path:
            status.modules["fastreid-cython"] = path
        else:
            status.missing["fastreid-cython"] = error or "not built"
    return status


def load(name: str, path: str) -> ModuleType:
    """Import a peer's module from its file, outside any package."""
    module_name = "peer_" + name.replace("-", "_")
    if path.endswith(".so"):
        module_name = "rank_cy"  # an extension module must be imported under its own name
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
