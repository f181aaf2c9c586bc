"""The four methods on the tiny CLIP: forward/backward, trainable splits, caches, inference path."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from vlreid.errors import ReIDError
from vlreid.model.backbone import ReIDModel
from vlreid.model_config import ModelConfig
from vlreid.testing.clip import build_tiny_clip, tiny_clip_config
from vlreid.training.methods import METHODS, Method, Stage, build_method, method_config
from vlreid.training.methods.svll import SVLLMethod

torch.set_num_threads(1)

TINY = {"vision_width": 32, "vision_layers": 2, "patch_size": 8, "image_size": (32, 16)}
OPTIONS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "clip-reid": {},
    "svll": {"head_hidden_dim": 16, "head_output_dim": 8},
    "scgi": {"heads": 2},
}
STAGES = [(name, stage) for name, cls in METHODS.items() for stage in cls.config_class.stage_names]
COLOURS = ["red", "red", "blue", "blue", "green", "green", "black", "black"]


@pytest.fixture(scope="module")
def clip_model() -> torch.nn.Module:
    return build_tiny_clip(seed=0, **TINY)


@pytest.fixture(scope="module")
def backbone() -> ModelConfig:
    architecture = tiny_clip_config(**TINY)
    return ModelConfig(clip_config=architecture, image_size=(32, 16), num_classes=4, sie_cameras=2)


def make_batch(seed: int = 0, with_captions: bool = True) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(seed)
    batch: dict[str, Any] = {
        "images": torch.randn(8, 3, 32, 16, generator=generator),
        "views": torch.randn(8, 2, 3, 32, 16, generator=generator),  # svll's image stage
        "labels": torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]),
        "pids": torch.tensor([10, 10, 11, 11, 12, 12, 13, 13]),
        "camids": torch.tensor([0, 1, 0, 1, 0, 1, 0, 1]),
        "relpaths": [f"train/{index}.jpg" for index in range(8)],
    }
    if with_captions:
        batch["captions"] = [f"A person in a {colour} shirt." for colour in COLOURS]
    return batch


def stage_of(method: Method, name: str) -> Stage:
    """The stage object called ``name`` of ``method``."""
    return {stage.name: stage for stage in method.stages}[name]


def prepared(method: Method, stage: str) -> Method:
    method.train()
    loader = [make_batch(0), make_batch(1)] if stage == "prompt" else None
    stage_of(method, stage).prepare(loader)
    return method


def optimizer_step(method: Method, stage: str) -> dict[str, torch.Tensor]:
    """One Adam step on the stage's ``param_groups()``; returns the parameters from before it."""
    before = {name: p.detach().clone() for name, p in method.named_parameters()}
    optimizer = torch.optim.Adam(stage_of(method, stage).param_groups())
    output = stage_of(method, stage)(make_batch(0))
    output.loss.backward()
    optimizer.step()
    return before


def changed(method: Method, before: dict[str, torch.Tensor]) -> set[str]:
    return {n for n, p in method.named_parameters() if not torch.equal(p.detach(), before[n])}


@pytest.mark.parametrize(("name", "stage"), STAGES)
def test_forward_backward(clip_model, backbone, name: str, stage: str) -> None:
    method = prepared(build_method(name, clip_model, backbone, OPTIONS[name]), stage)
    output = stage_of(method, stage)(make_batch(0))
    assert output.loss.ndim == 0 and torch.isfinite(output.loss)
    assert output.terms["loss"] == pytest.approx(output.loss.item())
    assert all(isinstance(value, float) for value in output.terms.values())
    output.loss.backward()
    trainable = [p for group in stage_of(method, stage).param_groups() for p in group["params"]]
    assert trainable and all(p.grad is not None for p in trainable)
    assert any(p.grad.abs().sum() > 0 for p in trainable)
    frozen = [p for p in method.parameters() if not p.requires_grad]
    assert all(p.grad is None for p in frozen)


def test_clip_reid_prompt_stage_changes_only_prompt_tokens(clip_model, backbone) -> None:
    method = prepared(build_method("clip-reid", clip_model, backbone), "prompt")
    before = optimizer_step(method, "prompt")
    assert changed(method, before) == {"prompt_tokens"}


@pytest.mark.parametrize("name", ["clip-reid", "svll"])
def test_image_stage_never_changes_prompts_or_text(clip_model, backbone, name: str) -> None:
    method = prepared(build_method(name, clip_model, backbone, OPTIONS[name]), "image")
    image_stage = stage_of(method, "image")
    text_features = image_stage.class_text_features.clone()
    before = optimizer_step(method, "image")
    moved = changed(method, before)
    assert "prompt_tokens" not in moved
    assert not any(n.startswith(("text_encoder.", "text_head.")) for n in moved)
    assert any(n.startswith("model.visual.") for n in moved)
    torch.testing.assert_close(image_stage.class_text_features, text_features)
    expected = method.identity_text_features(torch.arange(4))
    torch.testing.assert_close(image_stage.class_text_features, expected)


@pytest.mark.parametrize("train_text_head", [True, False])
def test_svll_prompt_stage_trains_prompts_and_optionally_the_head(
    clip_model, backbone, train_text_head: bool
) -> None:
    options = {**OPTIONS["svll"], "train_text_head": train_text_head}
    method = prepared(build_method("svll", clip_model, backbone, options), "prompt")
    before = optimizer_step(method, "prompt")
    moved = changed(method, before)
    head = {n for n, _ in method.named_parameters() if n.startswith("text_head.")}
    assert moved == ({"prompt_tokens"} | head if train_text_head else {"prompt_tokens"})


SCGI_VARIANTS = {
    "ours": {},
    "elementwise": {"token_weighting": "elementwise"},
    "relu3": {"mapper": "relu3"},
    "mean": {"query_pooling": "mean"},
    "heads-new": {"image_heads_lr": "new"},
    "reimplementation": {
        "token_weighting": "elementwise",
        "mapper": "relu3",
        "query_pooling": "mean",
        "image_heads_lr": "new",
    },
}


@pytest.mark.parametrize("variant", sorted(SCGI_VARIANTS))
def test_scgi_never_changes_the_text_encoder(clip_model, backbone, variant: str) -> None:
    options = {**OPTIONS["scgi"], **SCGI_VARIANTS[variant]}
    method = prepared(build_method("scgi", clip_model, backbone, options), "image")
    before = optimizer_step(method, "image")
    moved = changed(method, before)
    assert not any(n.startswith("text_encoder.") for n in moved)
    for prefix in ("model.visual.", "inversion.", "fusion.", "fusion_classifier."):
        assert any(n.startswith(prefix) for n in moved), prefix
    assert "model.bottleneck.bias" not in moved and "fusion_bottleneck.bias" not in moved


@pytest.mark.parametrize("image_heads_lr", ["visual", "new"])
def test_scgi_learning_rates(clip_model, backbone, image_heads_lr: str) -> None:
    options = {**OPTIONS["scgi"], "image_heads_lr": image_heads_lr}
    method = prepared(build_method("scgi", clip_model, backbone, options), "image")
    groups = {group["name"]: group for group in stage_of(method, "image").param_groups()}
    assert groups["visual"]["lr"] == 5e-6 and groups["new"]["lr"] == 5e-5
    assert groups["visual.bias"]["lr"] == 1e-5 and groups["new.bias"]["lr"] == 1e-4  # factor 2
    # the naive listing: which module each trainable parameter belongs to
    model = method.model
    heads = [model.bottleneck.weight, model.bottleneck_projected.weight, model.sie_embedding]
    heads += [model.classifier.weight, model.classifier_projected.weight]
    scgi_modules = [method.inversion, method.fusion, method.fusion_classifier]
    scgi_own = [p for module in scgi_modules for p in module.parameters()]
    scgi_own.append(method.fusion_bottleneck.weight)
    visual = list(model.visual.parameters()) + (heads if image_heads_lr == "visual" else [])
    new = scgi_own + (heads if image_heads_lr == "new" else [])
    ids = {name: {id(p) for p in group["params"]} for name, group in groups.items()}
    assert ids["visual"] | ids["visual.bias"] == {id(p) for p in visual}
    assert ids["new"] | ids["new.bias"] == {id(p) for p in new}
    trainable = {id(p) for p in method.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in visual + new}  # no parameter left out or frozen in
    assert not trainable & {id(p) for p in method.text_encoder.parameters()}


def test_scgi_switches_refuse_unknown_values() -> None:
    for key, value in [("token_weighting", "cosine"), ("mapper", "mlp"), ("image_heads_lr", 1)]:
        with pytest.raises(ReIDError, match=rf"^method\.{key} = .* is not one of \["):
            method_config("scgi", {key: value})
    options = method_config("scgi", {"query_pooling": "mean", "mapper": "relu3"})
    assert (options.query_pooling, options.mapper, options.token_weighting) == (
        "mean",
        "relu3",
        "elementwise",
    )


def scgi_cgi_inputs(method: Method, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """What CGI and CFF are given in one scgi forward, captured at their calls."""
    seen: dict[str, torch.Tensor] = {}
    inversion, fusion = method.inversion, method.fusion

    def record_inversion(module, args, output) -> None:
        seen["cgi_cls"], seen["cgi_tokens"] = args
        seen["pseudo_word"] = output

    def record_fusion(module, args, output) -> None:
        seen["cff_image_tokens"] = args[1]

    def record_mapper(module, args, output) -> None:
        seen["mapper_input"] = args[0]

    def record_last_block(module, args, kwargs, output) -> None:
        seen["queries"] = output

    handles = [
        inversion.register_forward_hook(record_inversion),
        fusion.register_forward_hook(record_fusion),
        inversion.mapper.register_forward_hook(record_mapper),
        inversion.blocks[-1].register_forward_hook(record_last_block, with_kwargs=True),
    ]
    try:
        stage_of(method, "image")(batch)
    finally:
        for handle in handles:
            handle.remove()
    return seen


@pytest.mark.parametrize("token_weighting", ["softmax", "elementwise"])
def test_scgi_token_weighting_equals_a_naive_loop(
    clip_model, backbone, token_weighting: str
) -> None:
    options = {**OPTIONS["scgi"], "token_weighting": token_weighting}
    method = prepared(build_method("scgi", clip_model, backbone, options), "image")
    batch = make_batch(0)
    seen = scgi_cgi_inputs(method, batch)
    with torch.no_grad():
        output = method.model.encode(batch["images"], method.camids_for(batch))
        captions = stage_of(method, "image").caption_features(batch["captions"])
    cls_features, tokens = output.projected, output.tokens
    expected_cls, expected_tokens = cls_features.clone(), tokens.clone()
    for b in range(tokens.shape[0]):
        if token_weighting == "elementwise":  # the reimplementation's cls * t, patch * t
            expected_cls[b] = cls_features[b] * captions[b]
            for n in range(tokens.shape[1]):
                expected_tokens[b, n] = tokens[b, n] * captions[b]
        else:  # ours: N * softmax of cos / t over the patches, CLS unchanged
            cosines = [
                torch.dot(tokens[b, n], captions[b]) / (tokens[b, n].norm() * captions[b].norm())
                for n in range(tokens.shape[1])
            ]
            exps = [torch.exp(c / method.config.weighting_temperature) for c in cosines]
            for n in range(tokens.shape[1]):
                expected_tokens[b, n] = tokens[b, n] * len(exps) * exps[n] / sum(exps)
    torch.testing.assert_close(seen["cgi_cls"], expected_cls)
    torch.testing.assert_close(seen["cgi_tokens"], expected_tokens)
    # CFF's keys and values: re-weighted in the reimplementation's mode, raw in ours
    cff_cls, cff_tokens = (
        (expected_cls, expected_tokens)
        if token_weighting == "elementwise"
        else (cls_features, tokens)
    )
    torch.testing.assert_close(seen["cff_image_tokens"][:, 0], cff_cls)
    torch.testing.assert_close(seen["cff_image_tokens"][:, 1:], cff_tokens)


@pytest.mark.parametrize("query_pooling", ["flatten", "mean"])
def test_scgi_query_pooling_feeds_the_mapper(clip_model, backbone, query_pooling: str) -> None:
    options = {**OPTIONS["scgi"], "num_queries": 3, "query_pooling": query_pooling}
    method = prepared(build_method("scgi", clip_model, backbone, options), "image")
    seen = scgi_cgi_inputs(method, make_batch(0))
    queries = seen["queries"]  # (B, K, E) after the last CGI block
    assert queries.shape[1] == 3
    for b in range(queries.shape[0]):
        if query_pooling == "mean":
            expected = (queries[b, 0] + queries[b, 1] + queries[b, 2]) / 3
        else:
            expected = torch.cat([queries[b, 0], queries[b, 1], queries[b, 2]])
        torch.testing.assert_close(seen["mapper_input"][b], expected)


@pytest.mark.parametrize("mapper", ["gelu2", "relu3"])
def test_scgi_mappers_have_the_named_layers(clip_model, backbone, mapper: str) -> None:
    options = {**OPTIONS["scgi"], "num_queries": 3, "mapper": mapper, "mapper_hidden_dim": 24}
    method = build_method("scgi", clip_model, backbone, options)
    embed_dim, text_width = method.model.embed_dim, method.text_encoder.width
    inputs = {"mapper": 3 * embed_dim, "global_mapper": embed_dim}
    for name, input_dim in inputs.items():
        module = getattr(method.inversion, name)
        linears = [layer for layer in module if isinstance(layer, torch.nn.Linear)]
        sizes = [(layer.in_features, layer.out_features) for layer in linears]
        if mapper == "relu3":  # the reimplementation's fMl / fMg: 3 Linears, ReLU between
            assert sizes == [(input_dim, 24), (24, 24), (24, text_width)]
        else:
            assert sizes == [(input_dim, 24), (24, text_width)]
        x = torch.randn(5, input_dim, generator=torch.Generator().manual_seed(0))
        hidden = x
        for index, linear in enumerate(linears):
            hidden = hidden @ linear.weight.T + linear.bias
            if index < len(linears) - 1:
                hidden = hidden.clamp(min=0) if mapper == "relu3" else F.gelu(hidden)
        with torch.no_grad():
            torch.testing.assert_close(module(x), hidden)


def test_clip_reid_caches_image_features_by_relpath(clip_model, backbone) -> None:
    method = build_method("clip-reid", clip_model, backbone)
    prompt_stage = stage_of(method, "prompt")
    with pytest.raises(ValueError, match="loader"):
        prompt_stage.prepare()
    prepared(method, "prompt")
    assert prompt_stage.cached_image_features.shape == (16, 32)
    second = make_batch(1)
    method.model.eval()
    with torch.no_grad():
        expected = method.model.encode(second["images"][2:4]).projected
    torch.testing.assert_close(prompt_stage.cached_features(second["relpaths"][2:4]), expected)
    with pytest.raises(KeyError, match="not cached"):
        prompt_stage.cached_features(["query/unknown.jpg"])


def test_scgi_encodes_each_caption_once(clip_model, backbone) -> None:
    method = prepared(build_method("scgi", clip_model, backbone, OPTIONS["scgi"]), "image")
    encoded: list[str] = []
    original = method.text_encoder.encode

    def counting_encode(texts):
        encoded.extend(texts)
        return original(texts)

    method.text_encoder.encode = counting_encode
    stage = stage_of(method, "image")
    stage(make_batch(0))
    stage(make_batch(1))
    assert sorted(encoded) == sorted(set(make_batch(0)["captions"]))
    caption = "A person in a red shirt."
    torch.testing.assert_close(
        stage.caption_features([caption])[0], original([caption]).features[0]
    )
    with pytest.raises(ReIDError, match="captions"):
        stage(make_batch(0, with_captions=False))


@pytest.mark.parametrize("variant", ["ours", "reimplementation"])
def test_scgi_inference_model_is_image_encoder_only(clip_model, backbone, variant: str) -> None:
    options = {**OPTIONS["scgi"], **SCGI_VARIANTS[variant]}
    method = prepared(build_method("scgi", clip_model, backbone, options), "image")
    optimizer_step(method, "image")
    keys = method.model.state_dict().keys()
    prefixes = ("visual.", "sie_embedding", "bottleneck", "classifier")
    assert all(key.startswith(prefixes) for key in keys)
    assert any(key.startswith("sie_embedding") for key in keys)
    rebuilt = ReIDModel(ModelConfig.from_dict(json.loads(json.dumps(backbone.to_dict()))))
    rebuilt.load_state_dict(method.model.state_dict(), strict=True)
    images = make_batch(2)["images"]
    method.model.eval()
    rebuilt.eval()
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(images), method.model(images))


def test_unknown_method_or_option_lists_valid_keys() -> None:
    with pytest.raises(ReIDError, match="valid methods"):
        method_config("clip-scgi")
    with pytest.raises(ReIDError, match="num_queries"):
        method_config("scgi", {"queries": 3})
    assert method_config("svll").text_ssl_weight == 0.8
    assert method_config("clip-reid").id_weight == 0.25


def test_svll_image_head_is_initialised_as_the_official_one(clip_model, backbone) -> None:
    """Official ``initialize_mlp``: Kaiming-normal linears (std sqrt(2 / fan_in)), BatchNorm
    weight and bias uniform on [0, 1]; the text head keeps PyTorch's defaults."""
    torch.manual_seed(0)
    options = {"head_hidden_dim": 256, "head_output_dim": 64}
    method = build_method("svll", clip_model, backbone, options)
    assert isinstance(method, SVLLMethod)
    linears = [m for m in method.image_head if isinstance(m, torch.nn.Linear)]
    norms = [m for m in method.image_head if isinstance(m, torch.nn.BatchNorm1d)]
    assert len(linears) == 3 and len(norms) == 2
    for linear in linears:
        fan_in = linear.weight.shape[1]
        assert linear.weight.std().item() == pytest.approx((2 / fan_in) ** 0.5, rel=0.1)
        assert linear.weight.mean().abs().item() < 0.2 * (2 / fan_in) ** 0.5
        bound = fan_in**-0.5  # the bias keeps PyTorch's uniform(-1/sqrt(fan_in), 1/sqrt(fan_in))
        assert linear.bias.abs().max().item() <= bound
    for norm in norms:
        for values in (norm.weight, norm.bias):
            assert values.min().item() >= 0 and values.max().item() <= 1
            assert values.mean().item() == pytest.approx(0.5, abs=0.1)
    # PyTorch's default Linear init (the text head's) has std 1 / sqrt(3 fan_in): 2.4x smaller
    text_linear = method.text_head[0]
    fan_in = text_linear.weight.shape[1]
    assert text_linear.weight.std().item() == pytest.approx((1 / (3 * fan_in)) ** 0.5, rel=0.1)
    text_norm = method.text_head[1]
    assert torch.equal(text_norm.weight, torch.ones_like(text_norm.weight))


def test_svll_image_stage_refuses_a_batch_without_views(clip_model, backbone) -> None:
    method = prepared(build_method("svll", clip_model, backbone, OPTIONS["svll"]), "image")
    batch = make_batch(0)
    del batch["views"]
    with pytest.raises(ReIDError, match=r"batch\['views'\].*build_stage_loader"):
        stage_of(method, "image")(batch)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_stage_objects_follow_the_options_stage_names(clip_model, backbone, name: str) -> None:
    method = build_method(name, clip_model, backbone, OPTIONS[name])
    assert tuple(stage.name for stage in method.stages) == method.config_class.stage_names
    assert all(stage.method is method for stage in method.stages)
    # the stages are not children of the method: its state_dict and parameters are its own
    assert not any(key.startswith("stages") for key in method.state_dict())


def test_loss_terms_stay_on_the_device_until_read(clip_model, backbone) -> None:
    method = prepared(build_method("baseline", clip_model, backbone), "image")
    output = stage_of(method, "image")(make_batch(0))
    assert output.term_names == ("loss", "id", "triplet")
    assert isinstance(output.term_values, torch.Tensor) and not output.term_values.requires_grad
    assert output.term_values.shape == (3,) and output.term_values.dtype == torch.float32
    assert output.terms == dict(zip(output.term_names, output.term_values.tolist(), strict=True))
