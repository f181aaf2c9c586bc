"""Run configuration: frozen dataclasses per concern, loaded from one TOML file.

A run is described by one TOML file with five tables::

    [data]            dataset, root, captions, P x K batch, workers, cache  -> DataConfig
    [model]           CLIP architecture, input size, stride, SIE, normalisation -> ModelConfig
    [method]          name = "scgi" | "svll" | "clip-reid" | "baseline", then the method's own
                      options (``vlreid.method_options``: loss weights, learning rates, ...)
    [stages.NAME]     one table per stage of the method (``stages.image``; ``stages.prompt`` for
                      the two-stage methods): optimizer, epochs, warm-up, schedule -> StageConfig
    [train]           seed, evaluation period, mixed precision, accumulation -> TrainConfig

Learning rates and weight decays live in ``[method]`` because a method gives different parameter
groups different rates (``scgi``: visual encoder 5e-6, new modules 5e-5, the rates of the
unofficial CLIP-SCGI reimplementation); a stage table only shapes them over time (warm-up, then
cosine or step decay).

``--set a.b=c`` overrides are applied to the parsed TOML before it is typed: the value is read as
a TOML value when it parses as one (``3``, ``1e-5``, ``true``, ``[256, 128]``, ``"text"``) and as
a plain string otherwise (``data.root=/data/market``); it is then converted to the type of the
dataclass field. ``none`` (in the file or in ``--set``) sets an optional field to None. Unknown
keys raise :class:`~vlreid.errors.ReIDError` listing the valid keys. :func:`dump_config` writes the
resolved configuration back as TOML (loadable again, every field explicit).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from vlreid.errors import ReIDError
from vlreid.method_options import METHOD_OPTIONS, ImageBranchConfig
from vlreid.model_config import NOT_IN_MODEL_TABLE, ModelConfig
from vlreid.paths import absolute_path, looks_like_path
from vlreid.typed_toml import (
    ConfigKeyError,
    TOMLDecodeError,
    apply_override,
    build_dataclass,
    dump_tables,
    locate_error,
    parse_toml,
    plain_dict,
    reject_unknown,
)

OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd")
SCHEDULES: tuple[str, ...] = ("multistep", "cosine", "constant")
SAMPLERS: tuple[str, ...] = ("identity", "shuffle")
MIXED_PRECISION: tuple[str, ...] = ("auto", "no", "bf16", "fp16")
RERANK_K1, RERANK_K2, RERANK_LAMBDA = 20, 6, 0.3
"""k1, k2 and lambda of k-reciprocal re-ranking in Zhong et al. (CVPR 2017): the generic default,
used wherever a run config gives none (CLIP-ReID's code would use 50, 15, 0.3)."""
RERANK_KEYS: tuple[str, str, str] = ("rerank_k1", "rerank_k2", "rerank_lambda")
"""The ``[train]`` keys of k1, k2 and lambda."""


@dataclass(frozen=True)
class DataConfig:
    """Where the images and captions are, and how batches are drawn.

    Attributes:
        dataset: A name of ``vlreid.datasets.PARSERS`` (``market1501``, ``synthetic``, ...).
        root: Dataset folder (or its parent), as ``reid data stats --root``.
        options: Parser options passed to ``vlreid.datasets.load_manifest`` (e.g. msmt17's
            ``train_val``).
        captions: Caption shard folder (``reid caption --out``); required by ``scgi``.
        missing_captions: ``"error"`` or ``"fallback"`` for training images without a caption.
        batch_size: Training images per batch, P x K (64 = 16 identities x 4).
        num_instances: K, images per identity in a batch.
        num_workers: Data-loader worker processes per rank.
        cache: None, or ``"memory"`` to decode and resize every image once.
        eval_batch_size: Images per batch when extracting query/gallery features.
        augmentation: Options of the training transform (``padding``, ``flip_probability``,
            ``erasing_probability``, ``erasing_area``, ``erasing_fill``); empty keeps the
            defaults of 256x128 crops (padding 10, erasing p 0.5), too strong for tiny inputs.
    """

    dataset: str = "market1501"
    root: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    captions: str | None = None
    missing_captions: str = "error"
    batch_size: int = 64
    num_instances: int = 4
    num_workers: int = 4
    cache: str | None = None
    eval_batch_size: int = 128
    augmentation: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StageConfig:
    """How one stage of a method is optimised.

    The learning-rate factor of epoch ``e`` (1-based, as CLIP-ReID counts) multiplies every
    parameter group's base rate (from ``[method]``). Warm-up (``e < warmup_epochs``), then:

    - ``multistep``: CLIP-ReID's ``WarmupMultiStepLR``: warm-up factor
      ``warmup_factor * (1 - a) + a`` with ``a = e / warmup_epochs``, times
      ``gamma ** (number of milestones <= e)``;
    - ``cosine``: timm's ``CosineLRScheduler`` as CLIP-ReID's stage 1 uses it: linear warm-up from
      ``warmup_factor`` to 1, then ``min + (1 - min) * (1 + cos(pi * e / epochs)) / 2`` with
      ``min = min_lr_factor``;
    - ``constant``: 1 after the warm-up.

    Attributes:
        optimizer: ``adam``, ``adamw`` or ``sgd``.
        momentum: SGD momentum.
        betas: Adam(W) betas.
        epochs: Epochs of the stage.
        steps_per_epoch: Cap on the batches of an epoch (None: the whole sampler epoch); budgets
            small synthetic runs by steps.
        warmup_epochs: Warm-up length in epochs (0: none).
        warmup_factor: Learning-rate factor at the start of the warm-up.
        schedule: ``multistep``, ``cosine`` or ``constant``.
        milestones: Epochs where ``multistep`` multiplies the rate by ``gamma``.
        gamma: Step decay factor.
        min_lr_factor: Final factor of ``cosine``.
        sampler: ``identity`` (P x K batches of augmented images) or ``shuffle`` (shuffled batches
            of training rows without images, for stages that read cached features, like
            CLIP-ReID's prompt stage).
        batch_size: Batch size of the stage; None means ``data.batch_size``.
    """

    optimizer: str = "adam"
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    epochs: int = 60
    steps_per_epoch: int | None = None
    warmup_epochs: int = 10
    warmup_factor: float = 0.1
    schedule: str = "multistep"
    milestones: tuple[int, ...] = (30, 50)
    gamma: float = 0.1
    min_lr_factor: float = 0.0
    sampler: str = "identity"
    batch_size: int | None = None


@dataclass(frozen=True)
class TrainConfig:
    """Run-wide training options.

    Attributes:
        seed: Seed of initialisation, sampler and augmentation.
        eval_every: Evaluate query/gallery every N epochs of the last stage (0: only after the
            last epoch of the run, which is always evaluated). Earlier stages are not evaluated:
            in CLIP-ReID's prompt stage the image encoder does not change.
        eval_at_start: Also evaluate the initial (untrained) model, logged as epoch 0.
        mixed_precision: ``auto`` (bf16 on GPU, none on CPU), ``no``, ``bf16`` or ``fp16``
            (float16 autocast with a gradient scaler per stage: the papers' precision, CLIP-ReID's
            ``amp.autocast`` + ``GradScaler``; also on CPU). Training only: evaluation runs in
            float32 (:mod:`vlreid.training.precision`).
        gradient_accumulation_steps: Batches whose gradients are summed before a step.
        cpu: Train on CPU even when a GPU is visible.
        rerank: Evaluate with k-reciprocal re-ranking (:mod:`vlreid.evaluation.rerank`), with
            the three parameters below. ``reid evaluate --checkpoint --rerank`` reads them from
            the checkpoint's run config too.
        rerank_k1: Re-ranking's k1, the size of the k-reciprocal neighbourhood (>= 1; Zhong et
            al. 20, CLIP-ReID's ``utils/metrics.py`` 50).
        rerank_k2: Re-ranking's k2, the neighbours averaged by local query expansion (>= 1; 1
            disables it; Zhong et al. 6, CLIP-ReID 15).
        rerank_lambda: Re-ranking's lambda, the weight of the original distance in the final
            one (in [0, 1]; 0.3 in both).
        progress: Draw a progress bar (rank 0).
    """

    seed: int = 1234
    eval_every: int = 10
    eval_at_start: bool = False
    mixed_precision: str = "auto"
    gradient_accumulation_steps: int = 1
    cpu: bool = False
    rerank: bool = False
    rerank_k1: int = RERANK_K1
    rerank_k2: int = RERANK_K2
    rerank_lambda: float = RERANK_LAMBDA
    progress: bool = True


@dataclass(frozen=True)
class MethodConfig:
    """The method's name and its options (the class of ``METHOD_OPTIONS[name]``)."""

    name: str
    options: ImageBranchConfig


@dataclass(frozen=True)
class RunConfig:
    """A whole run: see the module docstring for the TOML layout."""

    data: DataConfig
    model: ModelConfig
    method: MethodConfig
    stages: Mapping[str, StageConfig]
    train: TrainConfig

    def stage_names(self) -> tuple[str, ...]:
        """The method's stages, in training order."""
        return tuple(self.stages)

    def to_dict(self) -> dict[str, Any]:
        """The TOML layout as nested dicts (JSON-serialisable; None kept as None)."""
        model = plain_dict(self.model)
        return {
            "data": plain_dict(self.data),
            "model": {key: model[key] for key in model if key not in NOT_IN_MODEL_TABLE},
            "method": {"name": self.method.name, **plain_dict(self.method.options)},
            "stages": {name: plain_dict(stage) for name, stage in self.stages.items()},
            "train": plain_dict(self.train),
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as compact JSON (checkpoint metadata)."""
        return json.dumps(self.to_dict(), sort_keys=True)


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> RunConfig:
    """Read a TOML run config, apply ``key=value`` overrides, and type it.

    Raises:
        ReIDError: Missing/unreadable file, bad TOML, bad override, unknown key, wrong type.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ReIDError(f"cannot read config {path}: {error}") from error
    return absolute_paths(config_from_toml(text, overrides, source=f"config {path}"))


def absolute_paths(config: RunConfig) -> RunConfig:
    """``data.root``, ``data.captions`` (and ``model.pretrained`` when it names an existing
    file) made absolute against the current directory, as a config file or ``--set`` gives
    them; an empty root stays empty."""
    data = replace(
        config.data,
        root=str(absolute_path(config.data.root)) if config.data.root else "",
        captions=str(absolute_path(config.data.captions)) if config.data.captions else None,
    )
    pretrained = config.model.pretrained
    if pretrained and not pretrained.startswith("builtin:") and looks_like_path(pretrained):
        config = replace(
            config, model=replace(config.model, pretrained=str(absolute_path(pretrained)))
        )
    return replace(config, data=data)


def config_from_toml(text: str, overrides: Sequence[str] = (), source: str = "config") -> RunConfig:
    """Type a TOML document (see :func:`load_config`)."""
    try:
        raw = parse_toml(text)
    except TOMLDecodeError as error:
        raise ReIDError(f"{source} is not valid TOML: {error}") from error
    return config_from_dict(raw, overrides, source)


def config_from_dict(
    raw: Mapping[str, Any], overrides: Sequence[str] = (), source: str = "config"
) -> RunConfig:
    """Type a parsed TOML mapping (see :func:`load_config`).

    Raises:
        ReIDError: Blamed on the ``--set`` override that wrote the offending key, else on
            ``source``.
    """
    try:
        return _typed_config(raw, overrides, source)
    except ConfigKeyError as error:
        raise locate_error(error, source, overrides) from None


def _typed_config(raw: Mapping[str, Any], overrides: Sequence[str], source: str) -> RunConfig:
    raw = copy.deepcopy(dict(raw))
    for override in overrides:
        apply_override(raw, override)
    tables = ("data", "model", "method", "stages", "train")
    reject_unknown(raw, tables)
    method_table = dict(raw.get("method", {}))
    name = method_table.pop("name", None)
    if name not in METHOD_OPTIONS:
        message = f"method.name {name!r} is not one of {sorted(METHOD_OPTIONS)}"
        raise ConfigKeyError("method.name", message)
    options_class = METHOD_OPTIONS[name]
    stage_tables = raw.get("stages", {})
    if not isinstance(stage_tables, Mapping):
        raise ReIDError(f"{source}: [stages] must be a table of stage tables")
    valid_stages = options_class.stage_names
    reject_unknown(stage_tables, valid_stages, "stages", f" of method {name}")
    missing = [stage for stage in valid_stages if stage not in stage_tables]
    if missing:
        raise ReIDError(
            f"{source}: method {name} trains stages {list(valid_stages)}; add a table "
            + ", ".join(f"[stages.{stage}]" for stage in missing)
        )
    model_table = raw.get("model", {})
    if isinstance(model_table, Mapping):
        table_fields = [f.name for f in fields(ModelConfig) if f.name not in NOT_IN_MODEL_TABLE]
        reject_unknown(model_table, table_fields, "model")
    config = RunConfig(
        data=build_dataclass(DataConfig, raw.get("data", {}), "data"),
        model=build_dataclass(ModelConfig, model_table, "model"),
        method=MethodConfig(name, build_dataclass(options_class, method_table, "method")),
        stages={
            stage: build_dataclass(StageConfig, stage_tables[stage], f"stages.{stage}")
            for stage in valid_stages
        },
        train=build_dataclass(TrainConfig, raw.get("train", {}), "train"),
    )
    validate_config(config)
    return config


def validate_config(config: RunConfig) -> None:
    """Check the choice fields and ranges that the types do not express."""
    choices = [
        ("train.mixed_precision", config.train.mixed_precision, MIXED_PRECISION),
        ("data.missing_captions", config.data.missing_captions, ("error", "fallback")),
        ("data.cache", config.data.cache, (None, "memory")),
    ]
    for name, stage in config.stages.items():
        choices += [
            (f"stages.{name}.optimizer", stage.optimizer, OPTIMIZERS),
            (f"stages.{name}.schedule", stage.schedule, SCHEDULES),
            (f"stages.{name}.sampler", stage.sampler, SAMPLERS),
        ]
        if stage.epochs < 1 or stage.warmup_epochs < 0:
            raise ReIDError(f"stages.{name}: epochs must be >= 1 and warmup_epochs >= 0")
    for key, value, valid in choices:
        if value not in valid:
            raise ConfigKeyError(key, f"{key} = {value!r} is not one of {list(valid)}")
    if config.train.gradient_accumulation_steps < 1:
        raise ReIDError("train.gradient_accumulation_steps must be >= 1")
    validate_rerank(config.train)
    if config.data.batch_size % config.data.num_instances:
        raise ReIDError(
            f"data.batch_size {config.data.batch_size} must be a multiple of "
            f"data.num_instances {config.data.num_instances}"
        )


def validate_rerank(train: TrainConfig) -> None:
    """Check the re-ranking parameters of ``train`` (whether or not ``rerank`` is on).

    Raises:
        ConfigKeyError: k1 or k2 below 1, or lambda outside [0, 1], naming the key.
    """
    ranges = [
        ("train.rerank_k1", train.rerank_k1, train.rerank_k1 >= 1, ">= 1"),
        ("train.rerank_k2", train.rerank_k2, train.rerank_k2 >= 1, ">= 1"),
        ("train.rerank_lambda", train.rerank_lambda, 0 <= train.rerank_lambda <= 1, "in [0, 1]"),
    ]
    for key, value, valid, expected in ranges:
        if not valid:
            raise ConfigKeyError(key, f"{key} = {value!r} must be {expected}")


def recorded_rerank_parameters(run_config: Mapping[str, Any]) -> dict[str, int | float]:
    """The re-ranking keys (:data:`RERANK_KEYS`) that a run config records in ``[train]``, typed
    and validated; keys it lacks (a config written before they existed) are left out.

    Args:
        run_config: A run config as :meth:`RunConfig.to_dict` writes it (a checkpoint's
            ``reid.config`` metadata).

    Raises:
        ReIDError: A value of the wrong type or out of range, naming its key.
    """
    train = run_config.get("train") or {}
    recorded = {key: train[key] for key in RERANK_KEYS if key in train}
    typed = build_dataclass(TrainConfig, recorded, "train")
    validate_rerank(typed)
    return {key: getattr(typed, key) for key in recorded}


def dump_config(config: RunConfig) -> str:
    """The resolved config as TOML text that :func:`load_config` reads back to an equal config."""
    data = config.to_dict()
    tables = {table: data[table] for table in ("data", "model", "method")}
    tables.update({f"stages.{name}": stage for name, stage in data["stages"].items()})
    tables["train"] = data["train"]
    return dump_tables(tables)
