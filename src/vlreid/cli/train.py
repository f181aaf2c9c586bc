"""``reid train``, ``reid demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from vlreid.cli._app import app, console
from vlreid.cli._command import ReIDCommand, on_interrupt
from vlreid.cli._options import OverridesOption
from vlreid.errors import ReIDError

TRAIN_DEVICES: dict[str, str] = {"cpu": "train.cpu=true", "cuda": "train.cpu=false"}
"""``reid train --device`` -> the config override it stands for (accelerate places the model)."""


@app.command("train", cls=ReIDCommand)
def train_command(
    config: Annotated[
        Path, typer.Argument(help="Run config (TOML), e.g. configs/scgi_market1501.toml.")
    ],
    run_dir: Annotated[
        Path,
        typer.Option(
            "--run-dir",
            help="Run folder (config.toml, metrics.jsonl, curves.png, model.safetensors, "
            "state.pt). A folder holding state.pt is resumed.",
        ),
    ],
    overrides: OverridesOption = None,
    max_epochs: Annotated[
        int | None,
        typer.Option(min=1, help="Stop after this many epochs; the same command resumes later."),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="cpu or cuda (= --set train.cpu=true/false; which GPUs: CUDA_VISIBLE_DEVICES "
            "or accelerate launch). Default: the config's train.cpu."
        ),
    ] = None,
) -> None:
    """Train a ReID model with one of the methods (single process, or under accelerate launch)."""
    import os

    from vlreid.config import load_config
    from vlreid.training.checkpoint import STATE_FILE
    from vlreid.training.loop import train

    extra = []
    if device is not None:
        if device not in TRAIN_DEVICES:
            raise ReIDError(f"--device {device!r}: expected one of {', '.join(TRAIN_DEVICES)}")
        extra.append(TRAIN_DEVICES[device])
    run_config = load_config(config, [*(overrides or []), *extra])
    is_main = os.environ.get("RANK", "0") == "0"
    if is_main:
        if (run_dir / STATE_FILE).is_file():
            console.print(
                f"resuming the run in {run_dir} from its {STATE_FILE}",
                highlight=False,
                soft_wrap=True,
            )
        elif run_dir.is_dir() and any(run_dir.iterdir()):
            console.print(
                f"starting over in {run_dir} (no {STATE_FILE})", highlight=False, soft_wrap=True
            )
    result = train(run_config, run_dir, max_epochs=max_epochs)
    if not is_main:
        return
    scores = result.scores or {}
    summary = ", ".join(f"{key} {value:.4f}" for key, value in scores.items())
    state = "finished" if result.finished else "stopped"
    ending = f": {summary}" if summary else ""
    console.print(
        f"{state} after {result.epochs_run} epoch(s) in {run_dir}{ending}", soft_wrap=True
    )


def last_epoch(run_dir: Path) -> int | None:
    """The last epoch recorded in ``run_dir/metrics.jsonl`` (None when there is none)."""
    import json

    path = run_dir / "metrics.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    for line in reversed(lines):
        try:
            return int(json.loads(line)["epoch"])
        except (ValueError, KeyError, TypeError):
            continue
    return None


@on_interrupt("train")
def _train_interrupted(params: dict[str, Any]) -> str:
    from vlreid.training.checkpoint import STATE_FILE

    run_dir: Path = params["run_dir"]
    if not (run_dir / STATE_FILE).is_file():
        return f"interrupted before the first epoch ended: nothing to resume in {run_dir}"
    epoch = last_epoch(run_dir)
    after = f"epoch {epoch}" if epoch is not None else "its last finished epoch"
    return (
        f"interrupted: {run_dir} holds the run after {after} ({STATE_FILE}); run the same "
        "command to resume from there"
    )


@app.command("demo", cls=ReIDCommand)
def demo(
    out: Annotated[
        Path,
        typer.Option(help="Output folder (its data/, captions/ and runs/ are replaced)."),
    ] = Path("runs/demo"),
    quick: Annotated[
        bool, typer.Option("--quick", help="A much shorter variant (fewer ids, a few steps).")
    ] = False,
    captioner: Annotated[
        str,
        typer.Option(
            help="'llava' (a LLaVA-family model: --caption-model; by default the tiny LLaVA "
            "shipped in the package) or 'attributes' (the synthetic labels rendered into the "
            "caption template, no model)."
        ),
    ] = "llava",
    caption_model: Annotated[
        str, typer.Option(help="llava: hub id, local folder or builtin:NAME.")
    ] = "builtin:tiny-llava-synthetic",
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set", metavar="KEY=VALUE", help="Config override for every trained method."
        ),
    ] = None,
    device: Annotated[
        str, typer.Option(help="cpu or cuda: where captioning, training and evaluation run.")
    ] = "cpu",
) -> None:
    """Run the whole pipeline on synthetic data: data, captions, audit, training, evaluation.

    Synthetic pedestrians -> captions by the built-in tiny LLaVA (builtin:tiny-llava-synthetic,
    through the same code path as llava-1.5-7b) -> caption audit -> baseline and scgi trained on
    a tiny CLIP -> evaluation with ranked-list pictures. Nothing is downloaded; on 2 CPU cores it
    takes a few minutes (--quick: well under one). Writes OUT/results.json and results.md.
    """
    import time

    from vlreid.demo import DemoSettings, run_demo
    from vlreid.paths import absolute_if_path

    if device not in TRAIN_DEVICES:
        raise ReIDError(f"--device {device!r}: expected one of {', '.join(TRAIN_DEVICES)}")
    settings = DemoSettings(
        captioner=captioner,
        caption_model=absolute_if_path(caption_model),
        overrides=tuple(overrides or ()),
        device=device,
    )
    if quick:
        settings = settings.quick()
    start = time.perf_counter()

    def report(message: str) -> None:  # soft_wrap: long paths stay whole, to copy and paste
        console.print(message, highlight=False, soft_wrap=True)

    run_demo(out, settings, report=report)
    console.print((out / "results.md").read_text(encoding="utf-8"), highlight=False)
    report(f"demo finished in {time.perf_counter() - start:.0f} s: {out / 'results.json'}")


@on_interrupt("demo")
def _demo_interrupted(params: dict[str, Any]) -> str:
    return f"interrupted: {params['out']} is incomplete; run reid demo again to start over"
