"""Where a CLIP's pretrained weights come from: ``model.pretrained`` and ``reid evaluate --clip``.

``model.pretrained`` (and :attr:`BackboneConfig.pretrained`) takes:

- ``"builtin:tiny-clip-synthetic"``: the tiny CLIP shipped in ``vlreid/assets/`` (an open_clip
  ``CLIP`` with a 4-block ViT at 64x32 and a 4-block text tower with the CLIP BPE vocabulary,
  pretrained by ``scripts/train_tiny_clip.py`` on procedural pedestrians and sentences about
  their attributes). Its architecture is ``open_clip_config.json`` next to the weights
  (:func:`builtin_clip_config`); a run that loads it must use that ``clip_config``.
- a local weights file (:func:`load_weights`): OpenAI's TorchScript archive (``ViT-B-16.pt``, the
  file CLIP-ReID loads), or a state dict in open_clip's layout (``open_clip_pytorch_model.bin``,
  ``open_clip_model.safetensors``, any ``torch.save`` state dict);
- an open_clip pretrained tag such as ``"openai"`` (with ``clip_model``), fetched from the
  Hugging Face Hub by open_clip. Without network (or with ``HF_HUB_OFFLINE=1``) the Hub's local
  cache is used, and a tag that is not there fails at once with one line saying which local file
  to give instead (:func:`pretrained_file`; :func:`vlreid.hub.hub_access` decides in seconds);
- ``"none"`` (or no value): the same architecture, randomly initialised.

``reid evaluate --clip MODEL`` names a whole model: ``builtin:NAME``, ``NAME:TAG`` for open_clip
(``ViT-B-16:openai``) or a local weights file with an ``open_clip_config.json`` beside it
(:func:`clip_backbone`).
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

import open_clip
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

from vlreid.datasets.transforms import Preprocessing
from vlreid.errors import ReIDError
from vlreid.hub import hub_access

BUILTIN_PREFIX = "builtin:"
BUILTIN_CLIPS: dict[str, str] = {"tiny-clip-synthetic": "tiny-clip-synthetic"}
"""Built-in CLIP name -> its folder under ``vlreid/assets``."""
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "open_clip_config.json"
NO_WEIGHTS = ("", "none")
"""``pretrained`` values that mean random initialisation."""
WEIGHTS_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
"""Endings that make a ``pretrained`` value a file name rather than a tag."""
LOCAL_WEIGHTS = (
    "give a local weights file instead (model.pretrained = FILE: OpenAI's ViT-B-16.pt, or "
    "open_clip's open_clip_pytorch_model.bin or open_clip_model.safetensors), or none for a "
    "random initialisation"
)
"""The remedy that every refusal of ``model.pretrained`` ends with."""


def builtin_clip_folder(name: str) -> Path:
    """The packaged folder of ``builtin:NAME`` (``model.safetensors`` + ``open_clip_config.json``).

    Raises:
        ReIDError: Unknown name (the message lists the built-in ones), or missing files.
    """
    key = name.removeprefix(BUILTIN_PREFIX)
    if key not in BUILTIN_CLIPS:
        known = ", ".join(BUILTIN_PREFIX + k for k in sorted(BUILTIN_CLIPS))
        raise ReIDError(f"unknown built-in CLIP {name!r}: expected one of {known}")
    folder = Path(str(resources.files("vlreid").joinpath("assets", BUILTIN_CLIPS[key])))
    missing = [f for f in (WEIGHTS_NAME, CONFIG_NAME) if not (folder / f).is_file()]
    if missing:
        raise ReIDError(
            f"built-in CLIP {name!r} is missing {missing} under {folder} (reinstall the "
            "package, or retrain it with scripts/train_tiny_clip.py)"
        )
    return folder


def builtin_clip_config(name: str = "builtin:tiny-clip-synthetic") -> dict[str, Any]:
    """The open_clip model config of a built-in CLIP (``open_clip.CLIP(**config)`` builds it)."""
    return json.loads((builtin_clip_folder(name) / CONFIG_NAME).read_text())


def loads_weights(pretrained: str | None) -> bool:
    """Whether ``pretrained`` names weights (anything but None, ``""`` and ``"none"``)."""
    return pretrained is not None and pretrained.strip().lower() not in NO_WEIGHTS


def pretrained_file(clip_model: str, pretrained: str | None) -> str | None:
    """The local weights file that ``pretrained`` names; None for a random initialisation.

    Args:
        clip_model: The open_clip architecture whose tags ``pretrained`` may name (``ViT-B-16``).
        pretrained: ``none``, ``builtin:NAME``, a weights file, or an open_clip tag.

    Returns:
        The file itself; the packaged file of a built-in; for a tag, the file open_clip
        downloaded, or, when the Hub cannot be reached, the copy in its local cache.

    Raises:
        ReIDError: One line: a missing file (named), an unknown tag (the tags of
            ``clip_model`` listed), or a tag that can be neither downloaded nor found in the
            cache; each says what to give instead.
    """
    if pretrained is None or not loads_weights(pretrained):
        return None
    if pretrained.startswith(BUILTIN_PREFIX):
        return str(builtin_clip_folder(pretrained) / WEIGHTS_NAME)
    path = Path(pretrained).expanduser()
    if path.is_file():
        return str(path)
    tag = open_clip.get_pretrained_cfg(clip_model, pretrained)
    if tag:
        return _tag_file(clip_model, pretrained, tag)
    if Path(pretrained).name != pretrained or path.suffix in WEIGHTS_SUFFIXES:
        raise ReIDError(f"model.pretrained: no weights file {path.absolute()}; {LOCAL_WEIGHTS}")
    tags = ", ".join(open_clip.list_pretrained_tags_by_model(clip_model)) or "none"
    raise ReIDError(
        f"model.pretrained {pretrained!r} is neither a weights file nor a pretrained tag of "
        f"{clip_model} (its tags: {tags}); {LOCAL_WEIGHTS}"
    )


def _tag_file(clip_model: str, tag: str, tag_config: dict[str, Any]) -> str:
    """The file of open_clip's tag ``tag``: downloaded when the Hub answers, else from its cache."""
    from huggingface_hub import try_to_load_from_cache

    # open_clip's ``hf_hub`` is "owner/name/" (its default file names) or "owner/name/file".
    repo_id, filename = os.path.split(tag_config["hf_hub"])
    offline = hub_access(repo_id, instead=LOCAL_WEIGHTS)
    if offline is not None:
        for name in (filename,) if filename else (HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME):
            cached = try_to_load_from_cache(repo_id, name)
            if isinstance(cached, str):
                return cached
        raise ReIDError(
            f"model.pretrained = {tag!r}: {offline}, and open_clip's {clip_model} weights {tag!r} "
            f"are not in the local Hugging Face cache (`hf download {repo_id} "
            f"{filename or HF_SAFE_WEIGHTS_NAME} --local-dir DIR` fetches them where there is "
            f"network); {LOCAL_WEIGHTS}"
        )
    try:
        return open_clip.download_pretrained(tag_config)
    except Exception as error:  # huggingface_hub raises many error types (HTTP, cache, disk)
        raise ReIDError(
            f"model.pretrained = {tag!r}: cannot download open_clip's {clip_model} weights "
            f"{tag!r} from {repo_id}: {_one_line(error)}; {LOCAL_WEIGHTS}"
        ) from error


def is_torchscript(path: str | Path) -> bool:
    """Whether ``path`` is a TorchScript archive (OpenAI's ``ViT-B-16.pt``), not a state dict."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(Path(name).name == "constants.pkl" for name in archive.namelist())


def load_weights(model: open_clip.CLIP, path: str, what: str) -> None:
    """Load a weights file into ``model`` strictly, with ``open_clip.load_checkpoint``.

    open_clip reads ``.safetensors`` and ``torch.save`` state dicts (``weights_only``) in its
    layout, and the ``state_dict()`` of a TorchScript archive, which OpenAI's files are; OpenAI's
    layout is open_clip's, its fp16 weights are cast to the model's fp32 (as CLIP-ReID's
    ``convert_weights`` ends up doing).

    Args:
        model: The CLIP to fill.
        path: The weights file.
        what: The architecture, for the error (``ViT-B-16``, ``model.clip_config``).

    Raises:
        ReIDError: One line: an unreadable file, or weights of another architecture.
    """
    torchscript = is_torchscript(path)
    try:
        with warnings.catch_warnings():  # torch.load says it dispatches to the deprecated jit.load
            warnings.filterwarnings("ignore", message=r".*(TorchScript archive|torch\.jit\.load)")
            open_clip.load_checkpoint(model, path, weights_only=not torchscript)
    except Exception as error:  # torch, safetensors and zipfile raise their own types
        mismatch = isinstance(error, RuntimeError) and "state_dict" in str(error)
        problem = f"do not fit {what}" if mismatch else "cannot be read"
        raise ReIDError(f"pretrained weights {path} {problem}: {_one_line(error)}") from error


def _one_line(error: BaseException, limit: int = 300) -> str:
    """``error``'s message on one line, at most ``limit`` characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def clip_backbone(model: str) -> tuple[dict[str, Any] | None, str, str, tuple[int, int]]:
    """What ``reid evaluate --clip MODEL`` builds: (clip_config, clip_model, pretrained, size).

    Args:
        model: ``builtin:NAME``; an open_clip ``NAME:TAG`` (``ViT-B-16:openai``, at 256x128);
            or a local weights file with ``open_clip_config.json`` in its folder.

    Raises:
        ReIDError: An unknown built-in, an open_clip name or tag it does not know, or a local
            file without its config.
    """
    if model.startswith(BUILTIN_PREFIX):
        config = builtin_clip_config(model)
        return config, "", model, _config_size(config)
    path = Path(model)
    if path.is_file():
        config_path = path.parent / CONFIG_NAME
        if not config_path.is_file():
            raise ReIDError(
                f"--clip {model}: expected the open_clip model config at {config_path} "
                "(a JSON with embed_dim, vision_cfg, text_cfg)"
            )
        config = json.loads(config_path.read_text())
        return config, "", str(path), _config_size(config)
    name, _, tag = model.partition(":")
    if not tag or name not in open_clip.list_models():
        raise ReIDError(
            f"--clip {model!r}: expected builtin:tiny-clip-synthetic, an open_clip NAME:TAG "
            "such as ViT-B-16:openai, or an existing weights file"
        )
    return None, name, tag, (256, 128)


def clip_preprocessing(size: tuple[int, int]) -> Preprocessing:
    """CLIP's normalisation at the ReID input ``(height, width)``."""
    return Preprocessing.clip(size)


def _config_size(config: dict[str, Any]) -> tuple[int, int]:
    size = config["vision_cfg"].get("image_size", 224)
    return (int(size[0]), int(size[1])) if isinstance(size, list) else (int(size), int(size))
