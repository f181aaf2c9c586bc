"""``reid train``, ``reid demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vlreid.cli._app import app, console


@app.command("train")
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
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a config value, e.g. --set data.root=DIR --set method.lr=1e-5 "
            "(repeatable; 'none' clears an optional value).",
        ),
    ] = None,
    max_epochs: Annotated[
        int | None,
        typer.Option(min=1, help="Stop after this many epochs; the same command resumes later."),
    ] = None,
) -> None:
    """Train a ReID model with one of the methods (single process, or under accelerate launch)."""
    import os

    from vlreid.config import load_config
    from vlreid.training.checkpoint import STATE_FILE
    from vlreid.training.loop import train

    run_config = load_config(config, overrides or [])
    is_main = os.environ.get("RANK", "0") == "0"
    if is_main and (run_dir / STATE_FILE).is_file():
        console.print(f"resuming the run in {run_dir} from its {STATE_FILE}")
    result = train(run_config, run_dir, max_epochs=max_epochs)
    if not is_main:
        return
    scores = result.scores or {}
    summary = ", ".join(f"{key} {value:.4f}" for key, value in scores.items())
    state = "finished" if result.finished else "stopped"
    ending = f": {summary}" if summary else ""
    console.print(f"{state} after {result.epochs_run} epoch(s) in {run_dir}{ending}")


@app.command("demo")
def demo(
    out: Annotated[
        Path, typer.Option(help="Output folder (its data/, captions/ and runs/ are replaced).")
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
        typer.Option("--set", help="Config override for every trained method (repeatable)."),
    ] = None,
) -> None:
    """Run the whole pipeline on synthetic data: data, captions, audit, training, evaluation.

    Synthetic pedestrians -> captions by the built-in tiny LLaVA (builtin:tiny-llava-synthetic,
    through the same code path as llava-1.5-7b) -> caption audit -> baseline and scgi
    trained on a tiny CLIP -> evaluation with ranked-list pictures. Nothing is downloaded; on 2 CPU
    cores it takes a few minutes (--quick: well under one). Writes OUT/results.json and results.md.
    """
    import time

    from vlreid.demo import DemoSettings, run_demo

    settings = DemoSettings(
        captioner=captioner, caption_model=caption_model, overrides=tuple(overrides or ())
    )
    if quick:
        settings = settings.quick()
    start = time.perf_counter()
    run_demo(out, settings, report=lambda message: console.print(message, highlight=False))
    console.print((out / "results.md").read_text(encoding="utf-8"), highlight=False)
    console.print(
        f"demo finished in {time.perf_counter() - start:.0f} s: {out / 'results.json'}",
        highlight=False,
    )
