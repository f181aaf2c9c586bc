"""Training methods: one file each, one interface (see :mod:`vlreid.training.methods.base`).

``METHODS`` maps a method name (the ``method.name`` of a config) to its class; each class has a
frozen ``config_class`` (in :mod:`vlreid.method_options`) holding the paper's defaults and naming
the stages, and builds its :class:`Stage` objects as ``method.stages``. :func:`build_method`
checks the name and the option keys and builds the method.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import open_clip

from vlreid.method_options import method_config
from vlreid.model_config import ModelConfig
from vlreid.training.methods.base import Method, MethodOutput, Stage
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


def build_method(
    name: str,
    clip_model: open_clip.CLIP,
    model_config: ModelConfig,
    options: Mapping[str, Any] | None = None,
) -> Method:
    """Build method ``name`` on ``clip_model`` (see :func:`vlreid.model.backbone.build_clip`).

    Raises:
        ReIDError: ``name`` or an option key is unknown (the message lists the valid ones).
    """
    return METHODS[name](clip_model, model_config, method_config(name, options))


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
    "Stage",
    "build_method",
    "method_config",
]
