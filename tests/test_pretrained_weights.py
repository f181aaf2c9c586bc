"""``model.pretrained``: a local weights file in OpenAI's format (a TorchScript archive such as
``ViT-B-16.pt``) or open_clip's (``open_clip_pytorch_model.bin``, ``open_clip_model.safetensors``)
loads to the same weights and trains; an open_clip tag comes from the Hub, or from its local cache
when the Hub cannot be reached. Nothing here touches the network: the Hub's answers are simulated.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import open_clip
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from tiny_runs import IMAGE_SIZE, make_tiny_dataset, write_tiny_config
from vlreid.cli import app
from vlreid.hub import HUB_TIMEOUT_SECONDS
from vlreid.model import BackboneConfig, build_clip
from vlreid.model.pretrained import is_torchscript, pretrained_file
from vlreid.testing.clip import build_tiny_clip, tiny_clip_config
from vlreid.training.report import read_metrics

torch.set_num_threads(1)
FORMATS = ("open_clip_pytorch_model.bin", "open_clip_model.safetensors", "ViT-B-16.pt")
"""open_clip's state dicts (torch.save, safetensors) and OpenAI's TorchScript archive."""
OPENAI_REPO = "timm/vit_base_patch16_clip_224.openai"
"""Where open_clip fetches ``ViT-B-16`` / ``openai`` (its ``hf_hub``)."""
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def tiny_clip() -> open_clip.CLIP:
    """The tiny CLIP of the tiny runs (32 x 16 input), seed 0."""
    return build_tiny_clip(seed=0, image_size=tuple(IMAGE_SIZE))


def save_openai_torchscript(model: open_clip.CLIP, path: Path) -> None:
    """``model`` as OpenAI ships CLIP: a traced TorchScript archive of fp16 weights whose state
    dict also holds ``input_resolution``, ``context_length`` and ``vocab_size``, and no
    attention-mask buffer (OpenAI's mask is a plain attribute)."""
    for key, value in (("input_resolution", max(IMAGE_SIZE)), ("context_length", 77),
                       ("vocab_size", model.vocab_size)):  # fmt: skip
        if hasattr(model, key):
            delattr(model, key)
        model.register_buffer(key, torch.tensor(value))
    mask = model.attn_mask
    delattr(model, "attn_mask")
    model.attn_mask = mask
    image = torch.zeros(1, 3, *IMAGE_SIZE)
    text = torch.zeros(1, 77, dtype=torch.long)
    with warnings.catch_warnings():  # torch.jit is deprecated (and what OpenAI ships); tracer notes
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(model, (image, text), strict=False, check_trace=False)
        torch.jit.save(traced.half(), str(path))


def save_weights(model: open_clip.CLIP, path: Path) -> Path:
    """``model`` in the format that ``path``'s name stands for (:data:`FORMATS`)."""
    if path.name.endswith(".safetensors"):
        save_file({key: value.contiguous() for key, value in model.state_dict().items()}, path)
    elif path.name.endswith(".bin"):
        torch.save(model.state_dict(), path)
    else:
        save_openai_torchscript(model, path)
    return path


def tiny_backbone(pretrained: str) -> BackboneConfig:
    clip_config = tiny_clip_config(image_size=tuple(IMAGE_SIZE))
    return BackboneConfig(clip_config=clip_config, pretrained=pretrained, image_size=IMAGE_SIZE)


@pytest.mark.parametrize("name", FORMATS)
def test_each_format_loads_the_saved_weights(tmp_path: Path, name: str) -> None:
    path = save_weights(tiny_clip(), tmp_path / name)
    assert is_torchscript(path) == name.endswith(".pt")
    loaded = build_clip(tiny_backbone(str(path))).state_dict()
    saved = tiny_clip().state_dict()
    assert loaded.keys() == saved.keys()
    openai = name.endswith(".pt")
    for key, value in saved.items():
        # OpenAI's weights are fp16; the model keeps them as fp32, as CLIP-ReID's convert_weights
        expected = value.half().float() if openai and value.is_floating_point() else value
        assert loaded[key].dtype == value.dtype and torch.equal(loaded[key], expected), key
    random_init = build_clip(tiny_backbone("none")).state_dict()
    assert not torch.equal(loaded["visual.conv1.weight"], random_init["visual.conv1.weight"])


def test_a_run_trains_from_each_format(tmp_path: Path) -> None:
    data = make_tiny_dataset(tmp_path / "data")
    config = write_tiny_config(tmp_path / "run.toml", data, "baseline", epochs=1)
    start_map = {}
    for name in FORMATS:
        weights = save_weights(tiny_clip(), tmp_path / name)
        run_dir = tmp_path / f"run-{name}"
        overrides = [f"model.pretrained={weights}", "train.eval_at_start=true"]
        arguments = ["train", str(config), "--run-dir", str(run_dir)]
        arguments += [part for override in overrides for part in ("--set", override)]
        result = CliRunner().invoke(app, arguments)
        assert result.exit_code == 0, result.output
        records = read_metrics(run_dir / "metrics.jsonl")
        assert [record["epoch"] for record in records] == [0, 1]
        start_map[name] = records[0]["mAP"]
        assert records[1]["loss"] > 0
    # the same weights (bin, safetensors) give the same untrained evaluation
    assert start_map["open_clip_pytorch_model.bin"] == start_map["open_clip_model.safetensors"]


def fake_hub_cache(cache: Path, weights: Path) -> None:
    """A Hugging Face cache holding ``weights`` as open_clip's openai ViT-B-16 file."""
    repo = cache / f"models--{OPENAI_REPO.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(weights.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No network: ``HF_HUB_OFFLINE``, and an empty Hub cache that the test may fill."""
    from huggingface_hub import constants

    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_an_openai_tag_without_network_loads_the_cached_copy(offline: Path, tmp_path: Path) -> None:
    weights = save_weights(tiny_clip(), tmp_path / "open_clip_model.safetensors")
    fake_hub_cache(offline, weights)
    snapshot = offline / f"models--{OPENAI_REPO.replace('/', '--')}" / "snapshots" / COMMIT
    assert pretrained_file("ViT-B-16", "openai") == str(snapshot / "open_clip_model.safetensors")
    loaded = build_clip(tiny_backbone("openai"))
    assert torch.equal(loaded.visual.conv1.weight, tiny_clip().visual.conv1.weight)


def test_an_openai_tag_with_network_is_downloaded_by_open_clip(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub

    weights = save_weights(tiny_clip(), tmp_path / "open_clip_pytorch_model.bin")
    asked: list[tuple[str, dict]] = []
    downloads: list[dict] = []

    def model_info(repo_id: str, **options: object) -> None:  # the Hub answers
        asked.append((repo_id, options))

    def download_pretrained(config: dict) -> str:
        downloads.append(config)
        return str(weights)

    monkeypatch.setattr(huggingface_hub, "model_info", model_info)
    monkeypatch.setattr(open_clip, "download_pretrained", download_pretrained)
    assert pretrained_file("ViT-B-16", "openai") == str(weights)
    assert [repo for repo, _ in asked] == [OPENAI_REPO] and asked[0][1][
        "timeout"
    ] == HUB_TIMEOUT_SECONDS
    assert downloads == [open_clip.get_pretrained_cfg("ViT-B-16", "openai")]
