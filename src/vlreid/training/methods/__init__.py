"""Training methods: one file each, one interface (see :mod:`vlreid.training.methods.base`).

``METHODS`` maps a method name (the ``method.name`` of a config) to its class; each class has a
frozen ``config_class`` holding the paper's defaults. :func:`build_method` checks the name and
the option keys and builds the method.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import open_clip

from vlreid.errors import ReIDError
from vlreid.model.backbone import BackboneConfig
from vlreid.training.methods.base import Method, MethodOutput
from vlreid.training.methods.baseline import BaselineConfig, BaselineMethod
from vlreid.training.methods.clip_reid import CLIPReIDConfig, CLIPReIDMethod
from vlreid.training.methods.scgi import SCGIConfig, SCGIMethod
from vlreid.training.methods.svll import SVLLConfig, SVLLMethod

METHODS: dict[str, type[Method]] = {
    "baseline": BaselineMethod,
    "clip-reid": CLIPReIDMethod,
    "svll": SVLLMethod,
    "scgi": SCGIMethod,
}


def method_config(name: str, options: Mapping[str, Any] | None = None) -> Any:
    """The config dataclass of method ``name`` with ``options`` overriding its defaults.

    Raises:
        ReIDError: ``name`` or an option key is unknown (the message lists the valid ones).
    """
    if name not in METHODS:
        raise ReIDError(f"unknown method {name!r}; valid methods: {sorted(METHODS)}")
    config_class = METHODS[name].config_class
    valid = [field.name for field in dataclasses.fields(config_class)]
    unknown = sorted(set(options or {}) - set(valid))
    if unknown:
        raise ReIDError(f"unknown option(s) {unknown} for method {name!r}; valid: {valid}")
    return config_class(**dict(options or {}))


def build_method(
    name: str,
    clip_model: open_clip.CLIP,
    backbone: BackboneConfig,
    options: Mapping[str, Any] | None = None,
) -> Method:
    """Build method ``name`` on ``clip_model`` (see :func:`vlreid.model.backbone.build_clip`)."""
    return METHODS[name](clip_model, backbone, method_config(name, options))


__all__ = [
    "METHODS",
    "BaselineConfig",
    "BaselineMethod",
    "CLIPReIDConfig",
    "CLIPReIDMethod",
    "Method",
    "MethodOutput",
    "SCGIConfig",
    "SCGIMethod",
    "SVLLConfig",
    "SVLLMethod",
    "build_method",
    "method_config",
]
