"""The ReID backbone: positional-embedding resize, patch stride, SIE, features, ResNet, configs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from vlreid.errors import ReIDError
from vlreid.model.backbone import ReIDModel, build_clip, build_reid_model
from vlreid.model.vision import attention_pool_tokens, resize_positional_embedding
from vlreid.model_config import ModelConfig
from vlreid.testing.clip import build_tiny_clip, tiny_clip_config

torch.set_num_threads(1)

TINY_VIT = {"vision_width": 32, "vision_layers": 2, "patch_size": 8, "image_size": (32, 16)}
TINY_RESNET = {"vision_width": 8, "vision_layers": (1, 1, 1, 1), "image_size": (64, 32)}


def naive_bilinear(grid: torch.Tensor, out_height: int, out_width: int) -> torch.Tensor:
    """Half-pixel-centre bilinear resampling of ``grid`` (H, W, D), one output cell at a time."""
    in_height, in_width, _ = grid.shape
    rows = []
    for i in range(out_height):
        for j in range(out_width):
            y = max((i + 0.5) * in_height / out_height - 0.5, 0.0)
            x = max((j + 0.5) * in_width / out_width - 0.5, 0.0)
            y0, x0 = min(math.floor(y), in_height - 1), min(math.floor(x), in_width - 1)
            y1, x1 = min(y0 + 1, in_height - 1), min(x0 + 1, in_width - 1)
            wy, wx = y - y0, x - x0
            rows.append(
                (1 - wy) * (1 - wx) * grid[y0, x0]
                + (1 - wy) * wx * grid[y0, x1]
                + wy * (1 - wx) * grid[y1, x0]
                + wy * wx * grid[y1, x1]
            )
    return torch.stack(rows)


@pytest.mark.parametrize("target", [(7, 5), (3, 2), (16, 8), (21, 10)])
def test_positional_embedding_resize_is_bilinear(target: tuple[int, int]) -> None:
    generator = torch.Generator().manual_seed(0)
    source = (4, 3)
    embedding = torch.randn(1 + source[0] * source[1], 6, generator=generator, dtype=torch.float64)
    resized = resize_positional_embedding(embedding, source, target)
    assert resized.shape == (1 + target[0] * target[1], 6)
    assert torch.equal(resized[0], embedding[0])  # the CLS row is kept
    expected = naive_bilinear(embedding[1:].reshape(*source, 6), *target)
    torch.testing.assert_close(resized[1:], expected)
    corners = [0, target[1] - 1, (target[0] - 1) * target[1], target[0] * target[1] - 1]
    torch.testing.assert_close(resized[1:][corners], expected[corners])


@pytest.mark.parametrize(("stride", "grid"), [(16, (16, 8)), (12, (21, 10))])
def test_vit_grid_for_patch_stride(stride: int, grid: tuple[int, int]) -> None:
    options = {"embed_dim": 8, "vision_width": 16, "vision_layers": 1, "vision_head_width": 16}
    options |= {"patch_size": 16, "image_size": (224, 224)}
    architecture = tiny_clip_config(**options)
    clip_model = build_tiny_clip(**options)
    config = ModelConfig(clip_config=architecture, image_size=(256, 128), stride=stride)
    model = build_reid_model(config, clip_model)
    assert model.grid_size == grid
    assert model.visual.conv1.stride == (stride, stride)
    expected = resize_positional_embedding(
        clip_model.visual.positional_embedding.detach(), (14, 14), grid
    )
    torch.testing.assert_close(model.visual.positional_embedding.detach(), expected)
    output = model.encode(torch.randn(2, 3, 256, 128))
    assert output.tokens.shape == (2, grid[0] * grid[1], 8)
    assert output.final.shape == output.penultimate.shape == (2, 16)


def test_same_grid_reproduces_clip_image_features() -> None:
    clip_model = build_tiny_clip(**TINY_VIT)
    config = ModelConfig(clip_config=tiny_clip_config(**TINY_VIT), image_size=(32, 16))
    model = build_reid_model(config, clip_model)
    images = torch.randn(3, 3, 32, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.encode(images).projected, clip_model.encode_image(images))


def test_sie_changes_features_per_camera_only_when_enabled() -> None:
    clip_model = build_tiny_clip(**TINY_VIT)
    architecture = tiny_clip_config(**TINY_VIT)
    images = torch.randn(2, 3, 32, 16).repeat(2, 1, 1, 1)
    camids = torch.tensor([0, 0, 2, 2])
    with_sie = build_reid_model(
        ModelConfig(clip_config=architecture, image_size=(32, 16), sie_cameras=3), clip_model
    ).eval()
    without_sie = build_reid_model(
        ModelConfig(clip_config=architecture, image_size=(32, 16)), clip_model
    ).eval()
    with torch.no_grad():
        features = with_sie(images, camids)
        assert not torch.allclose(features[:2], features[2:], atol=1e-4)  # cameras 0 and 2 differ
        plain = without_sie(images, camids)
        torch.testing.assert_close(plain[:2], plain[2:])  # disabled: camids are ignored
        torch.testing.assert_close(with_sie(images), plain)  # no camids: no camera embedding
        with_sie.sie_embedding.data[2] = with_sie.sie_embedding.data[0]
        same = with_sie(images, camids)
        torch.testing.assert_close(same[:2], same[2:])  # the camera's row is what changes them


def test_inference_feature_is_normalised_concat_of_pre_bn_features() -> None:
    config = ModelConfig(
        clip_config=tiny_clip_config(**TINY_VIT), image_size=(32, 16), num_classes=5
    )
    model = ReIDModel(config).eval()
    images = torch.randn(4, 3, 32, 16)
    with torch.no_grad():
        features = model(images)
        output = model.encode(images)
    assert features.shape == (4, model.final_dim + model.embed_dim) == (4, 32 + 32)
    torch.testing.assert_close(features.norm(dim=1), torch.ones(4))
    expected = F.normalize(torch.cat([output.final, output.projected], dim=1), dim=1)
    torch.testing.assert_close(features, expected)
    logits = model.neck(output)
    assert logits.logits.shape == logits.projected_logits.shape == (4, 5)
    assert model.classifier.bias is None and not model.bottleneck.bias.requires_grad


def test_vit_b16_stride12_sie_gives_1280_features() -> None:
    model = ReIDModel(ModelConfig(stride=12, sie_cameras=6)).eval()
    assert model.grid_size == (21, 10)
    assert model.visual.positional_embedding.shape == (211, 768)
    with torch.no_grad():
        features = model(torch.randn(1, 3, 256, 128), torch.tensor([5]))
    assert features.shape == (1, 1280)


def test_resnet_last_stride_one_and_attention_pool() -> None:
    clip_model = build_tiny_clip(**TINY_RESNET)
    config = ModelConfig(
        clip_config=tiny_clip_config(**TINY_RESNET), image_size=(64, 32), num_classes=3
    )
    model = build_reid_model(config, clip_model).eval()
    assert model.grid_size == (4, 2)
    assert model.visual.attnpool.positional_embedding.shape == (4 * 2 + 1, 256)
    images = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        output = model.encode(images)
        stage4 = model.visual.layer4(
            model.visual.layer3(model.visual.layer2(model.visual.layer1(model.visual.stem(images))))
        )
        assert stage4.shape[-2:] == (4, 2)  # output stride 16: stage 4 keeps stage 3's grid
        pooled = attention_pool_tokens(model.visual.attnpool, stage4)
        torch.testing.assert_close(pooled[:, 0], model.visual.attnpool(stage4))
        features = model(images)
    assert output.penultimate.shape == (2, 128) and output.final.shape == (2, 256)
    assert output.projected.shape == (2, 32) and output.tokens.shape == (2, 8, 32)
    assert features.shape == (2, 256 + 32)
    rn50 = ReIDModel(ModelConfig(clip_model="RN50"))
    assert rn50.grid_size == (16, 8) and rn50.feature_dim == 2048 + 1024


def test_config_json_round_trip_and_errors(tmp_path) -> None:
    config = ModelConfig(
        clip_config=tiny_clip_config(**TINY_VIT), image_size=(32, 16), stride=6, sie_cameras=2
    )
    restored = ModelConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    with pytest.raises(ReIDError, match="valid options"):
        ModelConfig.from_dict({**config.to_dict(), "strides": 12})
    with pytest.raises(ReIDError, match="unknown open_clip model"):
        ReIDModel(ModelConfig(clip_model="ViT-X-99"))


def test_backbone_json_of_older_checkpoints_still_loads() -> None:
    """``reid.backbone`` as every model.safetensors so far wrote it (BackboneConfig.to_dict)."""
    saved = {
        "clip_model": "ViT-B-16",
        "clip_config": tiny_clip_config(**TINY_VIT),
        "pretrained": None,
        "quick_gelu": True,
        "image_size": [32, 16],
        "stride": 6,
        "sie_cameras": 2,
        "sie_coefficient": 1.0,
        "num_classes": 0,
    }
    config = ModelConfig.from_dict(json.loads(json.dumps(saved)))
    assert (config.image_size, config.stride, config.sie_cameras, config.sie) == (
        (32, 16),
        6,
        2,
        True,
    )
    assert config.to_dict() == json.loads(json.dumps(saved))  # the same keys, in the same order
    assert list(config.to_dict()) == list(saved)
    assert ReIDModel(config).sie_embedding.shape == (2, 32)
    with pytest.raises(ReIDError, match="number of cameras"):
        ReIDModel(ModelConfig(clip_config=saved["clip_config"], image_size=(32, 16), sie=True))


def test_pretrained_file_loads_into_clip_and_model(tmp_path) -> None:
    clip_model = build_tiny_clip(seed=3, **TINY_VIT)
    path = tmp_path / "tiny.pt"
    torch.save(clip_model.state_dict(), path)
    config = ModelConfig(
        clip_config=tiny_clip_config(**TINY_VIT), image_size=(32, 16), pretrained=str(path)
    )
    loaded = build_clip(config)
    for name, tensor in clip_model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor)
    model = build_reid_model(config)
    images = torch.randn(2, 3, 32, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.encode(images).projected, clip_model.encode_image(images))


def test_backbone_builds_and_runs_without_transformers() -> None:
    script = textwrap.dedent(
        """
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] == "transformers":
                    raise ImportError("transformers is blocked")
        sys.meta_path.insert(0, Block())
        import torch
        from vlreid.testing.clip import tiny_clip_config
        from vlreid.model.backbone import ReIDModel
        from vlreid.model_config import ModelConfig
        config = ModelConfig(clip_config=tiny_clip_config(), image_size=(64, 32))
        print(tuple(ReIDModel(config)(torch.randn(2, 3, 64, 32)).shape))
        assert "transformers" not in sys.modules
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(2, 96)"
