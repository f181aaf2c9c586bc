"""Run configs: TOML loading, typed --set overrides, errors, round trip, every shipped config."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from vlreid.config import (
    RunConfig,
    StageConfig,
    config_from_toml,
    dump_config,
    load_config,
)
from vlreid.errors import ReIDError
from vlreid.training.schedule import learning_rate_factor, set_learning_rates

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
BENCHMARKS = ("market1501", "msmt17", "dukemtmc", "occluded_duke")
METHOD_NAMES = ("baseline", "clip-reid", "svll", "scgi")

MINIMAL = """
[data]
dataset = "synthetic"
root = "/data/synthetic"

[method]
name = "clip-reid"

[stages.prompt]
sampler = "shuffle"
schedule = "cosine"

[stages.image]
epochs = 60
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def test_minimal_config_gets_defaults_and_method_options(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    assert config.data.root == "/data/synthetic"
    assert config.data.batch_size == 64
    assert config.method.name == "clip-reid"
    assert config.method.options.prompt_lr == pytest.approx(3.5e-4)
    assert config.stage_names() == ("prompt", "image")
    assert config.stages["prompt"].schedule == "cosine"
    assert config.model.preprocessing().size == (256, 128)


def test_overrides_are_typed_by_the_field(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, MINIMAL),
        [
            "data.root=/elsewhere/market",  # not TOML: taken as a string
            "data.batch_size=32",
            "model.image_size=[128, 64]",
            "model.stride=12",
            "model.sie=true",
            "method.lr=1e-5",
            "method.triplet_margin=none",
            "stages.image.milestones=[3, 5]",
            "stages.image.steps_per_epoch=7",
            "train.seed=3",
        ],
    )
    assert config.data.root == "/elsewhere/market"
    assert config.data.batch_size == 32
    assert config.model.image_size == (128, 64)
    assert config.model.stride == 12 and config.model.sie is True
    assert config.method.options.lr == 1e-5
    assert config.method.options.triplet_margin is None
    assert config.stages["image"].milestones == (3, 5)
    assert config.stages["image"].steps_per_epoch == 7
    assert config.train.seed == 3
    assert isinstance(config.method.options.lr, float)


def test_rerank_parameters_default_to_zhong_and_parse_typed(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    train = config.train
    assert (train.rerank, train.rerank_k1, train.rerank_k2, train.rerank_lambda) == (
        False,
        20,
        6,
        0.3,
    )
    text = MINIMAL + "\n[train]\nrerank = true\nrerank_k1 = 50\nrerank_k2 = 15\n"
    config = load_config(write(tmp_path, text), ["train.rerank_lambda=1"])
    train = config.train
    assert (train.rerank, train.rerank_k1, train.rerank_k2, train.rerank_lambda) == (
        True,
        50,
        15,
        1.0,
    )
    assert isinstance(train.rerank_lambda, float)  # the TOML integer 1, typed by the field
    assert config_from_toml(dump_config(config)) == config


def test_override_into_a_mapping_field(tmp_path: Path) -> None:
    text = MINIMAL + "\n[model.clip_config]\nembed_dim = 32\n"
    config = load_config(write(tmp_path, text), ["model.clip_config.embed_dim=64"])
    assert config.model.clip_config == {"embed_dim": 64}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "data.bach_size=3",
            "--set data.bach_size=3: unknown key 'bach_size' in [data]; did you mean "
            "'batch_size'? (valid keys: dataset, root, options, captions, missing_captions, "
            "batch_size, num_instances, num_workers, cache, eval_batch_size, augmentation)",
        ),
        ("method.margin=0.5", "--set method.margin=0.5: unknown key 'margin' in [method]"),
        (
            "optim.lr=1",
            "--set optim.lr=1: unknown key 'optim' (valid keys: data, model, method, stages, "
            "train)",
        ),
        (
            "stages.warmup.epochs=1",
            "--set stages.warmup.epochs=1: unknown key 'warmup' in [stages] of method clip-reid",
        ),
        ("data.batch_size=many", "--set data.batch_size=many: data.batch_size must be an integer"),
        ("model.sie=1", "--set model.sie=1: model.sie must be true or false"),
        ("model.image_size=[1, 2, 3]", "--set model.image_size=[1, 2, 3]: model.image_size must"),
        (
            "stages.image.schedule=linear",
            "--set stages.image.schedule=linear: stages.image.schedule = 'linear' is not one of "
            "['multistep', 'cosine', 'constant']",
        ),
        ("method.name=transreid", "--set method.name=transreid: method.name 'transreid' is not"),
        ("data.batch_size", "--set data.batch_size: expected section.key=value"),
        ("train.rerank_k1=0", "--set train.rerank_k1=0: train.rerank_k1 = 0 must be >= 1"),
        ("train.rerank_k2=2.5", "--set train.rerank_k2=2.5: train.rerank_k2 must be an integer"),
        (
            "train.rerank_lambda=1.5",
            "--set train.rerank_lambda=1.5: train.rerank_lambda = 1.5 must be in [0, 1]",
        ),
    ],
)
def test_bad_keys_and_values_raise_with_the_valid_choices(
    tmp_path: Path, override: str, message: str
) -> None:
    with pytest.raises(ReIDError) as error:
        load_config(write(tmp_path, MINIMAL), [override])
    assert str(error.value).startswith(message)


def test_errors_in_the_file_name_the_file_and_suggest_the_closest_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("epochs = 60", "epoch = 60"))
    with pytest.raises(ReIDError) as error:
        load_config(path, ["data.batch_size=32"])  # an override elsewhere is not blamed
    assert str(error.value).startswith(
        f"config {path}: unknown key 'epoch' in [stages.image]; did you mean 'epochs'?"
    )
    with pytest.raises(ReIDError) as error:
        load_config(path, ["stages.image.epoch=3"])  # the override sets the same key: blamed
    assert str(error.value).startswith("--set stages.image.epoch=3: unknown key 'epoch'")


def test_relative_paths_are_made_absolute_against_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights.pt").write_bytes(b"")
    config = load_config(
        write(tmp_path, MINIMAL),
        ["data.root=data/D", "data.captions=../caps", "model.pretrained=weights.pt"],
    )
    assert config.data.root == str(tmp_path / "data" / "D")
    assert config.data.captions == str(tmp_path.parent / "caps")
    assert config.model.pretrained == str(tmp_path / "weights.pt")
    config = load_config(write(tmp_path, MINIMAL), ["data.root=", "model.pretrained=openai"])
    assert config.data.root == "" and config.model.pretrained == "openai"


def test_every_stage_of_the_method_needs_a_table(tmp_path: Path) -> None:
    text = MINIMAL.replace('[stages.prompt]\nsampler = "shuffle"\nschedule = "cosine"\n', "")
    with pytest.raises(ReIDError, match=r"add a table \[stages.prompt\]"):
        load_config(write(tmp_path, text))


def test_bad_toml_and_missing_file_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(ReIDError, match="not valid TOML"):
        load_config(write(tmp_path, "[data\n"))
    with pytest.raises(ReIDError, match="cannot read config .*absent.toml"):
        load_config(tmp_path / "absent.toml")


def test_dump_reads_back_to_an_equal_config(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, MINIMAL),
        ["method.triplet_margin=none", "model.clip_config.vision_cfg.layers=2"],
    )
    text = dump_config(config)
    again = config_from_toml(text)
    assert again == config
    assert again.method.options.triplet_margin is None
    assert "[model.clip_config.vision_cfg]" in text


VARIANT_OF = {"clip-reid-sie-olp": "clip-reid"}
"""Config-name prefixes that are a variant of a method (the method.name they must hold)."""


def shipped_configs() -> list[Path]:
    return sorted(CONFIGS.glob("*.toml"))


def test_the_shipped_configs_cover_every_method_and_benchmark() -> None:
    names = {path.stem for path in shipped_configs()}
    for method in METHOD_NAMES:
        assert f"synthetic_{method}" in names
        for benchmark in BENCHMARKS:
            assert f"{method}_{benchmark}" in names
    for benchmark in BENCHMARKS:
        assert f"clip-reid-sie-olp_{benchmark}" in names
    for method in ("clip-reid", "clip-reid-sie-olp", "svll", "scgi"):
        for vehicles in ("veri776", "vehicleid"):
            assert f"{method}_{vehicles}" in names


def test_the_vehicle_configs_carry_the_official_vehicle_settings() -> None:
    """CLIP-ReID's configs/veri, configs/VehicleID and SVLL-ReID's vehicle configs."""
    for name in ("clip-reid", "clip-reid-sie-olp", "svll", "scgi"):
        for dataset in ("veri776", "vehicleid"):
            config = load_config(CONFIGS / f"{name}_{dataset}.toml", ["data.root=/data"])
            assert config.model.image_size == (256, 256)
            options = config.method.options
            prompt = options.pseudo_prompt if name == "scgi" else options.prompt
            assert prompt.endswith("vehicle.")
            if name != "scgi":
                assert config.stages["prompt"].epochs == 60
    clip_reid_vehicleid = load_config(CONFIGS / "clip-reid_vehicleid.toml", ["data.root=/d"])
    assert clip_reid_vehicleid.stages["prompt"].batch_size == 256
    assert clip_reid_vehicleid.method.options.lr == 5e-5
    svll_veri = load_config(CONFIGS / "svll_veri776.toml", ["data.root=/d"])
    assert (svll_veri.data.batch_size, svll_veri.method.options.text_ssl_weight) == (32, 2.0)
    for dataset in ("market1501", "msmt17", "dukemtmc", "occluded_duke", "veri776", "vehicleid"):
        svll = load_config(CONFIGS / f"svll_{dataset}.toml", ["data.root=/d"])
        assert svll.method.options.train_text_head is False  # the official optimiser
        assert svll.method.options.view_erasing_area == (0.33, 1 / 3)  # the official views


def test_paper_configs_rerank_with_clip_reids_parameters_when_switched_on() -> None:
    """CLIP-ReID's utils/metrics.py (shared by SVLL-ReID and NTDuckk/CLIPSCGI) calls re_ranking
    with k1 50, k2 15, lambda 0.3, but nothing turns it on; the synthetic configs keep 20/6/0.3."""
    for path in shipped_configs():
        train = load_config(path, ["data.root=/d"]).train
        parameters = (train.rerank_k1, train.rerank_k2, train.rerank_lambda)
        expected = (20, 6, 0.3) if path.stem.startswith("synthetic_") else (50, 15, 0.3)
        assert (train.rerank, parameters) == (False, expected), path.name


@pytest.mark.parametrize("path", shipped_configs(), ids=lambda path: path.stem)
def test_every_shipped_config_loads_and_names_real_datasets_and_methods(path: Path) -> None:
    from vlreid.datasets import PARSERS
    from vlreid.training.methods import METHODS

    config = load_config(path, ["data.root=/data"])
    assert isinstance(config, RunConfig)
    assert config.data.dataset in PARSERS
    assert config.method.name in METHODS
    assert config.stage_names() == METHODS[config.method.name].config_class.stage_names
    first, _, rest = path.stem.partition("_")
    method, dataset = (rest, "synthetic") if first == "synthetic" else (first, rest)
    assert (VARIANT_OF.get(method, method), config.data.dataset) == (config.method.name, dataset)
    if method == "clip-reid-sie-olp":  # CLIP-ReID with SIE (1.0) and overlapping patches
        assert (config.model.sie, config.model.sie_coefficient, config.model.stride) == (
            True,
            1.0,
            12,
        )
    # CLIP-ReID's filters (every official code path): evaluation bilinear, training bicubic.
    assert (config.model.interpolation, config.model.train_interpolation) == (
        "bilinear",
        "bicubic",
    )
    assert config_from_toml(dump_config(config)) == config


def test_interpolation_keys_take_only_known_filters(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL), ["model.interpolation=bicubic"])
    assert config.model.preprocessing().interpolation == "bicubic"
    assert config.model.train_preprocessing().interpolation == "bicubic"
    with pytest.raises(ReIDError, match=r"model train_interpolation = 'lanczos' is not one of"):
        load_config(write(tmp_path, MINIMAL), ["model.train_interpolation=lanczos"])


def clip_reid_warmup_multistep(
    epoch: int, milestones: list[int], gamma: float, factor: float, iters: int
) -> float:
    """CLIP-ReID's WarmupMultiStepLR.get_lr (linear warm-up), written out naively."""
    warmup = 1.0
    if epoch < iters:
        alpha = epoch / iters
        warmup = factor * (1 - alpha) + alpha
    decays = sum(1 for milestone in milestones if milestone <= epoch)
    return warmup * gamma**decays


def test_multistep_factor_equals_clip_reid_warmup_multistep() -> None:
    stage = StageConfig(epochs=60, warmup_epochs=10, warmup_factor=0.1, milestones=(30, 50))
    for epoch in range(1, 61):
        expected = clip_reid_warmup_multistep(epoch, [30, 50], 0.1, 0.1, 10)
        assert learning_rate_factor(stage, epoch) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("dataset", [*BENCHMARKS, "veri776", "vehicleid"])
def test_scgi_configs_follow_the_reimplementation_schedule(dataset: str) -> None:
    """NTDuckk/CLIPSCGI: WarmupMultiStepLR(STEPS [20, 40], GAMMA 0.1, no warm-up), stepped after
    each epoch, so 1-based epoch e runs at its ``last_epoch`` e - 1."""
    config = load_config(CONFIGS / f"scgi_{dataset}.toml", ["data.root=/data"])
    stage = config.stages["image"]
    assert stage.epochs == 60
    factors = [learning_rate_factor(stage, epoch) for epoch in range(1, 61)]
    expected = [
        clip_reid_warmup_multistep(epoch - 1, [20, 40], 0.1, 1.0, 0) for epoch in range(1, 61)
    ]
    assert factors == pytest.approx(expected, rel=1e-12)
    assert (
        factors[19] == 1
        and factors[20] == pytest.approx(0.1)
        and factors[40] == pytest.approx(0.01)
    )


def test_scgi_switch_values_are_checked_when_loading(tmp_path: Path) -> None:
    text = MINIMAL.replace('name = "clip-reid"', 'name = "scgi"').replace(
        '[stages.prompt]\nsampler = "shuffle"\nschedule = "cosine"\n', ""
    )
    config = load_config(write(tmp_path, text), ["method.token_weighting=elementwise"])
    assert config.method.options.token_weighting == "elementwise"
    with pytest.raises(
        ReIDError, match=r"method\.mapper = 'relu4' is not one of \['gelu2', 'relu3'\]"
    ):
        load_config(write(tmp_path, text), ["method.mapper=relu4"])


def test_cosine_factor_equals_timm_cosine_scheduler() -> None:
    from timm.scheduler import CosineLRScheduler

    base, warmup_lr, min_lr = 3.5e-4, 1e-5, 1e-6
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=base)
    scheduler = CosineLRScheduler(
        optimizer, t_initial=120, lr_min=min_lr, warmup_t=5, warmup_lr_init=warmup_lr
    )
    stage = StageConfig(
        epochs=120,
        schedule="cosine",
        warmup_epochs=5,
        warmup_factor=warmup_lr / base,
        min_lr_factor=min_lr / base,
    )
    for epoch in range(1, 121):
        scheduler.step(epoch)
        expected = optimizer.param_groups[0]["lr"]
        assert base * learning_rate_factor(stage, epoch) == pytest.approx(expected, rel=1e-9)


def test_set_learning_rates_scales_each_group_from_its_own_base() -> None:
    visual, new = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([{"params": [visual], "lr": 5e-6}, {"params": [new], "lr": 5e-5}])
    stage = StageConfig(epochs=60, warmup_epochs=10, warmup_factor=0.1, milestones=(30, 50))
    rates = set_learning_rates(optimizer, stage, 1)
    assert rates == pytest.approx([5e-6 * 0.19, 5e-5 * 0.19])
    rates = set_learning_rates(optimizer, stage, 55)  # from the base, not from the last rate
    assert rates == pytest.approx([5e-8, 5e-7])
    assert math.isclose(optimizer.param_groups[1]["initial_lr"], 5e-5)


def test_model_table_refuses_the_fields_that_come_from_the_dataset(tmp_path: Path) -> None:
    expected = r"^--set model.num_classes=5: unknown key 'num_classes' in \[model\]"
    with pytest.raises(ReIDError, match=expected):
        load_config(write(tmp_path, MINIMAL), ["model.num_classes=5"])
    config = load_config(write(tmp_path, MINIMAL), ["model.sie=true"])
    derived = config.model.for_dataset(num_classes=5, num_cameras=3)
    assert (derived.num_classes, derived.sie_cameras, derived.sie) == (5, 3, True)
    assert config.model.for_dataset(5, 3).preprocessing() == config.model.preprocessing()
    plain = load_config(write(tmp_path, MINIMAL)).model.for_dataset(5, 3)
    assert (plain.num_classes, plain.sie_cameras) == (5, 0)
    assert "num_classes" not in config.to_dict()["model"]
