"""``builtin:tiny-clip-synthetic``: the synthetic configs load it strictly, ``none`` does not, and
``reid evaluate --clip`` evaluates its image tower with no ReID training."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from vlreid.cli import app
from vlreid.config import load_config
from vlreid.errors import ReIDError
from vlreid.model import BackboneConfig, build_clip, build_reid_model
from vlreid.model.pretrained import builtin_clip_config, builtin_clip_folder, pretrained_file
from vlreid.synthetic import make_synthetic_dataset

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
METHODS = ("baseline", "clip-reid", "scgi", "svll")
BUILTIN = "builtin:tiny-clip-synthetic"


def synthetic_backbone(method: str, *overrides: str) -> BackboneConfig:
    model = load_config(CONFIGS / f"synthetic_{method}.toml", list(overrides)).model
    return BackboneConfig(
        clip_config=model.clip_config, pretrained=model.pretrained, image_size=model.image_size
    )


@pytest.mark.parametrize("method", METHODS)
def test_synthetic_configs_start_from_the_builtin_clip(method: str) -> None:
    model = load_config(CONFIGS / f"synthetic_{method}.toml").model
    assert model.pretrained == BUILTIN
    assert json.loads(json.dumps(dict(model.clip_config))) == builtin_clip_config()
    assert tuple(model.image_size) == tuple(builtin_clip_config()["vision_cfg"]["image_size"])


def test_weights_reach_the_reid_model_unchanged() -> None:
    """Pitfall 2 of the issue: no resize of the positional embedding on the way in."""
    saved = load_file(str(builtin_clip_folder(BUILTIN) / "model.safetensors"))
    backbone = synthetic_backbone("baseline")
    clip_model = build_clip(backbone)
    torch.testing.assert_close(
        clip_model.token_embedding.weight, saved["token_embedding.weight"].float()
    )
    reid_model = build_reid_model(backbone, clip_model)
    for key in ("positional_embedding", "conv1.weight", "proj"):
        torch.testing.assert_close(
            reid_model.visual.state_dict()[key], saved[f"visual.{key}"].float(), rtol=0, atol=0
        )


def test_none_builds_the_same_architecture_randomly_initialised() -> None:
    assert pretrained_file("ViT-B-16", "none") is None
    assert pretrained_file("ViT-B-16", None) is None
    pretrained = build_clip(synthetic_backbone("baseline"))
    random_init = build_clip(synthetic_backbone("baseline", "model.pretrained=none"))
    shapes = {key: value.shape for key, value in pretrained.state_dict().items()}
    assert shapes == {key: value.shape for key, value in random_init.state_dict().items()}
    assert not torch.equal(pretrained.visual.conv1.weight, random_init.visual.conv1.weight)


def test_unknown_builtin_names_the_known_ones() -> None:
    with pytest.raises(ReIDError, match="builtin:tiny-clip-synthetic"):
        pretrained_file("ViT-B-16", "builtin:tiny-clip-market")


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_dataset(root, ids=12, cameras=3, seed=5)
    return root


def evaluate_json(*arguments: str) -> dict[str, float]:
    result = CliRunner().invoke(app, ["evaluate", *arguments, "--format", "json", "--workers", "0"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def test_evaluate_clip_builtin_pretrained_and_untrained(synthetic_root: Path) -> None:
    data = ["--dataset", "synthetic", "--root", str(synthetic_root)]
    pretrained = evaluate_json("--clip", BUILTIN, *data)
    untrained = evaluate_json("--clip", BUILTIN, "--untrained", *data)
    assert 0.0 <= untrained["mAP"] <= 1.0 and 0.0 <= pretrained["mAP"] <= 1.0
    assert pretrained["mAP"] != untrained["mAP"]


def test_evaluate_clip_local_file_equals_the_builtin(synthetic_root: Path, tmp_path: Path) -> None:
    for name in ("model.safetensors", "open_clip_config.json"):
        shutil.copy(builtin_clip_folder(BUILTIN) / name, tmp_path / name)
    data = ["--dataset", "synthetic", "--root", str(synthetic_root)]
    local = evaluate_json("--clip", str(tmp_path / "model.safetensors"), *data)
    assert local == evaluate_json("--clip", BUILTIN, *data)


def test_evaluate_clip_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    data = ["--dataset", "synthetic", "--root", str(tmp_path)]
    unknown = runner.invoke(app, ["evaluate", "--clip", "builtin:nope", *data])
    assert unknown.exit_code == 2 and "builtin:tiny-clip-synthetic" in unknown.output
    weights = tmp_path / "weights.safetensors"
    weights.write_bytes(b"")
    no_config = runner.invoke(app, ["evaluate", "--clip", str(weights), *data])
    assert no_config.exit_code == 2 and "open_clip_config.json" in no_config.output
    both = runner.invoke(app, ["evaluate", "--clip", BUILTIN, "--checkpoint", str(weights)])
    assert both.exit_code == 2 and "exactly one input" in both.output
