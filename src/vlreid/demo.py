"""``reid demo``: the whole pipeline on an embedded default, on a CPU, in minutes.

Steps, each through the same library function as its own command:

1. ``reid data synth``: a procedural pedestrian dataset with known attributes (Market-1501 layout);
2. ``reid caption``: captions of the train split by the tiny LLaVA shipped in the package
   (``builtin:tiny-llava-synthetic``, trained by ``scripts/train_tiny_llava.py`` on other
   synthetic identities), through the code path that runs llava-1.5-7b; ``captioner="attributes"``
   renders the dataset's attribute labels instead (no model);
3. ``reid captions audit``: caption attributes against the true labels;
4. ``reid train``: ``baseline`` and ``scgi`` with the synthetic configs (tiny CLIP);
5. ``reid evaluate --checkpoint``: mAP, CMC, mINP and a ranked-list picture per method.

The results go to ``OUT/results.json`` and ``OUT/results.md``; pictures and curves beside them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from vlreid.errors import ReIDError
from vlreid.paths import absolute_path

DEMO_FOLDERS: tuple[str, ...] = ("data", "captions", "runs")
"""Sub-folders of the output folder that the demo owns and replaces on every run."""


@dataclass(frozen=True)
class DemoSettings:
    """What the demo runs.

    Attributes:
        ids: Identities of the synthetic dataset (half train, half test).
        cameras: Cameras of the synthetic dataset.
        seed: Seed of the dataset (training seeds come from the configs).
        captioner: ``llava`` or ``attributes`` (labels rendered into the template, no model).
        caption_model: Model of the ``llava`` captioner.
        caption_batch_size: Images per ``generate`` call.
        methods: Methods to train, each with ``configs/synthetic_<method>.toml``.
        overrides: ``--set`` overrides applied to every method's config.
        visualize: Gallery images per query in the ranked-list pictures.
        device: ``cpu`` or ``cuda``: where captioning, training and evaluation run.
    """

    ids: int = 60
    cameras: int = 4
    seed: int = 0
    captioner: str = "llava"
    caption_model: str = "builtin:tiny-llava-synthetic"
    caption_batch_size: int = 16
    methods: tuple[str, ...] = ("baseline", "scgi")
    overrides: tuple[str, ...] = ()
    visualize: int = 8
    device: str = "cpu"

    def quick(self) -> DemoSettings:
        """A much shorter variant (the CI test runs it): fewer identities, a few steps."""
        return replace(
            self,
            ids=32,
            cameras=3,
            overrides=(
                "data.batch_size=32",
                "stages.image.epochs=3",
                "stages.image.warmup_epochs=1",
                "stages.image.steps_per_epoch=3",
                "train.eval_every=0",
                *self.overrides,
            ),
        )


def synthetic_config_path(method: str) -> Path:
    """The packaged ``synthetic_<method>.toml`` config (also at ``configs/`` in the repository)."""
    path = Path(str(resources.files("vlreid").joinpath("configs", f"synthetic_{method}.toml")))
    if not path.is_file():
        raise ReIDError(f"no synthetic config for method {method!r}: expected {path}")
    return path


def run_demo(
    out: str | Path, settings: DemoSettings, report: Callable[[str], None] = lambda message: None
) -> dict[str, Any]:
    """Run the whole pipeline into ``out`` and write ``results.json`` and ``results.md``.

    Args:
        out: Output folder; its sub-folders :data:`DEMO_FOLDERS` are replaced.
        settings: What to run.
        report: Called with a one-line message at the start and end of every step.

    Returns:
        The content of ``results.json``.
    """
    from vlreid.captioning.audit import audit_captions
    from vlreid.captioning.backends import CAPTIONERS
    from vlreid.captioning.llava import LlavaSettings
    from vlreid.captioning.run import CaptionRunConfig, caption_dataset
    from vlreid.synthetic import make_synthetic_dataset

    if settings.captioner not in CAPTIONERS:  # before any work, not after the dataset
        raise ReIDError(f"unknown captioner {settings.captioner!r}: expected one of {CAPTIONERS}")
    out = absolute_path(out)
    earlier = [name for name in DEMO_FOLDERS if (out / name).exists()]
    if earlier:
        report(f"{out} holds an earlier demo: starting over ({', '.join(earlier)} replaced)")
    else:
        report(f"writing the demo into {out}")
    out.mkdir(parents=True, exist_ok=True)
    for name in DEMO_FOLDERS:
        shutil.rmtree(out / name, ignore_errors=True)
    data_root, captions = out / "data", out / "captions"

    report(f"1/5 synthetic dataset: {settings.ids} identities x {settings.cameras} cameras")
    make_synthetic_dataset(
        data_root, ids=settings.ids, cameras=settings.cameras, seed=settings.seed
    )

    source = settings.caption_model if settings.captioner == "llava" else "the attribute labels"
    report(f"2/5 captions of the train split by {settings.captioner} ({source})")
    caption_config = CaptionRunConfig(
        captioner=settings.captioner,
        llava=LlavaSettings(model=settings.caption_model, device=settings.device),
        attributes=data_root / "attributes.parquet",
        batch_size=settings.caption_batch_size,
    )
    summary = caption_dataset("synthetic", data_root, captions, caption_config)
    report(f"    {summary.images} images at {summary.images_per_second:.0f} images/s")

    audit = audit_captions(captions, data_root / "attributes.parquet")
    report(f"3/5 caption audit: attribute accuracy {audit.overall:.3f} over {audit.rows} captions")

    methods: dict[str, dict[str, float]] = {}
    for method in settings.methods:
        methods[method] = _train_and_evaluate(method, out, data_root, captions, settings, report)

    results = {
        "methods": methods,
        "captions": {
            "attribute_accuracy": audit.overall,
            "fields": {entry.field: entry.agreement for entry in audit.fields},
            "images": summary.images,
            "images_per_s": summary.images_per_second,
            "captioner": settings.captioner,
            "model": settings.caption_model if settings.captioner == "llava" else None,
        },
        "dataset": {"ids": settings.ids, "cameras": settings.cameras, "seed": settings.seed},
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(results_markdown(results), encoding="utf-8")
    return results


def _train_and_evaluate(
    method: str,
    out: Path,
    data_root: Path,
    captions: Path,
    settings: DemoSettings,
    report: Callable[[str], None],
) -> dict[str, float]:
    """Train one method with its synthetic config, then evaluate its checkpoint with a picture."""
    from vlreid.config import load_config
    from vlreid.evaluation.features import checkpoint_inputs
    from vlreid.evaluation.scoring import EvaluationOptions, evaluate_inputs
    from vlreid.training.loop import train
    from vlreid.training.report import read_metrics

    run_dir = out / "runs" / method
    on_cpu = "true" if settings.device == "cpu" else "false"
    overrides = [f"data.root={data_root}", f"train.cpu={on_cpu}"]
    overrides += settings.overrides
    if method == "scgi":
        overrides.append(f"data.captions={captions}")
    config = load_config(synthetic_config_path(method), overrides)
    height, width = config.model.image_size
    report(f"4/5 training {method} (tiny CLIP, {height}x{width} input)")
    train(config, run_dir)

    weights = run_dir / "model.safetensors"
    inputs = checkpoint_inputs(weights, "synthetic", data_root, settings.device, num_workers=0)
    picture = out / f"ranked_lists_{method}.png"
    options = EvaluationOptions(
        visualize=settings.visualize, picture=picture, device=settings.device
    )
    result = evaluate_inputs(inputs, options).result
    scores = {
        "mAP": result.mAP,
        "rank1": float(result.cmc[0]),
        "rank5": float(result.cmc[min(4, len(result.cmc) - 1)]),
        "mINP": result.mINP,
    }
    untrained = [r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("epoch") == 0]
    if untrained and "mAP" in untrained[0]:
        scores["untrained_mAP"] = float(untrained[0]["mAP"])
    curves = run_dir / "curves.png"
    if curves.is_file():
        shutil.copyfile(curves, out / f"curves_{method}.png")
    report(f"5/5 {method}: mAP {scores['mAP']:.3f}, rank-1 {scores['rank1']:.3f} ({picture.name})")
    return scores


def results_markdown(results: dict[str, Any]) -> str:
    """``results.md``: the demo's results as Markdown tables."""
    lines = [
        "# reid demo results",
        "",
        "| method | mAP | rank-1 | rank-5 | mINP | untrained mAP |",
        "|---|---|---|---|---|---|",
    ]
    for method, scores in results["methods"].items():
        untrained = scores.get("untrained_mAP")
        lines.append(
            f"| {method} | {scores['mAP']:.3f} | {scores['rank1']:.3f} | {scores['rank5']:.3f} "
            f"| {scores['mINP']:.3f} | {'-' if untrained is None else f'{untrained:.3f}'} |"
        )
    captions = results["captions"]
    lines += [
        "",
        f"Captions: {captions['images']} train images by {captions['captioner']}"
        f"{' (' + captions['model'] + ')' if captions['model'] else ''} at "
        f"{captions['images_per_s']:.0f} images/s; attribute accuracy "
        f"{captions['attribute_accuracy']:.3f}.",
        "",
        "| field | accuracy |",
        "|---|---|",
        *(f"| {field} | {value:.3f} |" for field, value in captions["fields"].items()),
        "",
    ]
    return "\n".join(lines)
