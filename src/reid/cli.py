"""The ``reid`` command line.

Each command parses its options and calls one library function, so that tests and notebooks run
the same code. Errors the user can fix (:class:`reid.errors.ReIDError`) are printed as one line,
without a traceback, and exit with status 2. Heavy libraries are imported inside the commands,
so that ``reid --help`` stays fast.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from typer.core import TyperGroup

from reid import __version__
from reid.errors import ReIDError

console = Console()
error_console = Console(stderr=True)


class _UserErrorGroup(TyperGroup):
    """Prints a :class:`ReIDError` raised by any command as one line and exits with status 2."""

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except ReIDError as error:
            error_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from None


app = typer.Typer(
    name="reid",
    cls=_UserErrorGroup,
    help="Caption-guided, CLIP-based person re-identification.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
data_app = typer.Typer(
    help="Parse benchmark folders and make synthetic data.", no_args_is_help=True
)
app.add_typer(data_app, name="data")


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"reid {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Print the version."
        ),
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )


# ----------------------------------------------------------------------------------------------
# reid data ...
# ----------------------------------------------------------------------------------------------


# reid data stats (src/reid/datasets/report.py, parsers in src/reid/datasets/) ----------------


@data_app.command("stats")
def data_stats(
    dataset: Annotated[
        str,
        typer.Option(
            help="Dataset: market1501, msmt17, dukemtmc, occluded_duke, cuhk03, veri776, "
            "vehicleid or synthetic."
        ),
    ],
    root: Annotated[
        Path,
        typer.Option(
            help="The dataset folder (holding the split folders) or a parent holding it under "
            "its archive name, e.g. Market-1501-v15.09.15, MSMT17_V1, VeRi."
        ),
    ],
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help='"table" (subset | # ids | # images | # cameras) or "json" '
            '({"train": {"ids": N, "images": N, "cameras": N}, "query": ..., "gallery": ...}).',
        ),
    ] = "table",
    train_val: Annotated[
        bool,
        typer.Option(
            "--train-val",
            help="msmt17 only: train on list_train.txt + list_val.txt (as CLIP-ReID).",
        ),
    ] = False,
    variant: Annotated[
        str | None, typer.Option(help="cuhk03 only: 'labeled' (default) or 'detected' boxes.")
    ] = None,
    test_size: Annotated[
        int | None, typer.Option(help="vehicleid only: test list 800 (default), 1600 or 2400.")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="vehicleid only: seed of the one-image-per-vehicle gallery draw."),
    ] = None,
) -> None:
    """Parse a benchmark folder, check its layout and print the split statistics."""
    from reid.datasets.report import dataset_report

    # Only the options the user gave reach the parser, which rejects those of other datasets.
    options = {
        name: value
        for name, value in (
            ("train_val", train_val or None),
            ("variant", variant),
            ("test_size", test_size),
            ("seed", seed),
        )
        if value is not None
    }
    typer.echo(dataset_report(dataset, root, output_format, **options))


@data_app.command("load")
def data_load(
    dataset: Annotated[str, typer.Option(help="Dataset name, e.g. market1501 or synthetic.")],
    root: Annotated[Path, typer.Option(help="Dataset folder (or its parent).")],
    captions: Annotated[
        Path | None,
        typer.Option(help="Caption shard folder (part-*.parquet) to join by relpath."),
    ] = None,
    fallback_captions: Annotated[
        bool,
        typer.Option(
            "--fallback-captions",
            help="Give images without a usable caption 'A photo of a person.' instead of failing.",
        ),
    ] = False,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs to iterate.")] = 1,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per batch (P x K).")] = 64,
    num_instances: Annotated[int, typer.Option(min=1, help="K: images per identity.")] = 4,
    cache: Annotated[
        str | None,
        typer.Option(help="'memory': decode and resize every image once, keep it in RAM."),
    ] = None,
    workers: Annotated[int, typer.Option(min=0, help="Data-loader worker processes.")] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the sampler and augmentation.")] = 0,
    train_val: Annotated[
        bool,
        typer.Option("--train-val", help="msmt17 only: train on the train + val lists."),
    ] = False,
) -> None:
    """Iterate the training loader (P x K sampler, augmentation) and print its images/s."""
    from reid.datasets.loaders import LoaderConfig, load_and_run_train_epochs

    config = LoaderConfig(
        batch_size=batch_size,
        num_instances=num_instances,
        num_workers=workers,
        cache=cache,
        seed=seed,
        missing_captions="fallback" if fallback_captions else "error",
    )
    result = load_and_run_train_epochs(
        dataset,
        root,
        config,
        captions_dir=captions,
        epochs=epochs,
        dataset_options={"train_val": True} if train_val else None,
    )
    console.print(
        f"{result.images} images in {result.batches} batches over {epochs} epoch(s): "
        f"{result.images_per_second:.0f} images/s (setup {result.setup_seconds:.2f} s)"
    )


# reid data synth (src/reid/datasets/synthetic.py) ---------------------------------------------


@data_app.command("synth")
def data_synth(
    out: Annotated[Path, typer.Option(help="Dataset folder to write (Market-1501 layout).")],
    ids: Annotated[
        int, typer.Option(min=2, max=9999, help="Identities; half of them form the test split.")
    ] = 100,
    cameras: Annotated[int, typer.Option(min=2, max=9, help="Cameras (2 to 9).")] = 6,
    seed: Annotated[
        int, typer.Option(help="Random seed; same arguments give identical files.")
    ] = 0,
    images_per_camera: Annotated[
        int,
        typer.Option(min=1, help="Train or gallery images per identity and camera it is seen in."),
    ] = 4,
    query_per_camera: Annotated[
        int, typer.Option(min=1, help="Query images per test identity and camera.")
    ] = 1,
    min_cameras: Annotated[
        int, typer.Option(min=2, help="Fewest cameras an identity appears in (at least 2).")
    ] = 2,
    distractors: Annotated[
        int, typer.Option(min=0, help="Gallery images of pid 0000 (people outside the ids).")
    ] = 0,
    height: Annotated[int, typer.Option(min=16, help="Image height in pixels.")] = 128,
    width: Annotated[int, typer.Option(min=8, help="Image width in pixels.")] = 64,
    no_occlusion: Annotated[
        bool, typer.Option("--no-occlusion", help="Do not draw occluders in any camera.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the images of an earlier run in --out.")
    ] = False,
) -> None:
    """Write a procedural pedestrian dataset (JPEGs + attributes.parquet) and print its size."""
    from reid.datasets.synthetic import make_synthetic_dataset

    summary = make_synthetic_dataset(
        out,
        ids=ids,
        cameras=cameras,
        seed=seed,
        images_per_camera=images_per_camera,
        query_per_camera=query_per_camera,
        min_cameras=min_cameras,
        distractors=distractors,
        height=height,
        width=width,
        occlusion=not no_occlusion,
        overwrite=overwrite,
    )
    console.print(
        f"wrote {summary.root}: train {summary.train_ids} ids / {summary.train_images} images, "
        f"query {summary.test_ids} ids / {summary.query_images} images, gallery "
        f"{summary.gallery_images} images ({summary.distractor_images} distractors), "
        f"{summary.cameras} cameras, in {summary.seconds:.1f} s",
        soft_wrap=True,
    )


# ----------------------------------------------------------------------------------------------
# reid caption, reid captions ...
# ----------------------------------------------------------------------------------------------

captions_app = typer.Typer(
    help="Inspect caption folders written by `reid caption`.", no_args_is_help=True
)
app.add_typer(captions_app, name="captions")


@app.command("caption")
def caption(
    dataset: Annotated[str, typer.Option(help="Dataset name, e.g. market1501 or synthetic.")],
    root: Annotated[Path, typer.Option(help="The dataset folder (or a parent holding it).")],
    out: Annotated[Path, typer.Option(help="Caption folder to write (resumed if it exists).")],
    split: Annotated[
        list[str],
        typer.Option(help="Split(s) to caption: train, query, gallery or all (repeatable)."),
    ] = ["train"],  # noqa: B006 (typer needs a list default)
    captioner: Annotated[
        str, typer.Option(help="'llava' (a vision-language model) or 'attributes' (labels).")
    ] = "llava",
    model: Annotated[
        str, typer.Option(help="llava: hub id or local folder of a LLaVA-family checkpoint.")
    ] = "llava-hf/llava-1.5-7b-hf",
    attributes: Annotated[
        Path | None,
        typer.Option(help="attributes: per-identity labels (.parquet/.csv with pid, or .mat)."),
    ] = None,
    template: Annotated[
        str,
        typer.Option(
            help="Caption template: person, vehicle, a template .toml file, or auto (vehicle "
            "for veri776 and vehicleid, person otherwise)."
        ),
    ] = "auto",
    batch_size: Annotated[int, typer.Option(min=1, help="Images per generate call.")] = 8,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Longest answer, in tokens.")] = 80,
    dtype: Annotated[
        str, typer.Option(help="auto (bf16/fp16 on GPU, fp32 on CPU), float32, float16, bfloat16.")
    ] = "auto",
    load_in_4bit: Annotated[
        bool, typer.Option("--load-in-4bit", help="Quantise to 4 bits (bitsandbytes, CUDA).")
    ] = False,
    load_in_8bit: Annotated[
        bool, typer.Option("--load-in-8bit", help="Quantise to 8 bits (bitsandbytes, CUDA).")
    ] = False,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda, cuda:1... (default: this rank's GPU, or CPU).")
    ] = None,
    pad_to_square: Annotated[
        bool,
        typer.Option(help="Pad tall crops to a square before the processor (keeps head and feet)."),
    ] = True,
    shard_size: Annotated[int, typer.Option(min=1, help="Rows per Parquet shard.")] = 1000,
    num_shards: Annotated[int, typer.Option(min=1, help="Jobs in a job array.")] = 1,
    shard_index: Annotated[int, typer.Option(min=0, help="This job's index in the array.")] = 0,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace captions written by another run.")
    ] = False,
    train_val: Annotated[
        bool, typer.Option("--train-val", help="msmt17 only: train split = train + val lists.")
    ] = False,
    variant: Annotated[
        str | None, typer.Option(help="cuhk03 only: 'labeled' (default) or 'detected'.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
) -> None:
    """Caption a dataset into resumable Parquet shards (read them with pd.read_parquet(OUT))."""
    import os

    from reid.captioning.llava import LlavaSettings
    from reid.captioning.run import (
        CaptionRunConfig,
        caption_dataset,
        format_summary,
        select_splits,
    )

    settings = LlavaSettings(
        model=model,
        max_new_tokens=max_new_tokens,
        dtype=dtype,
        load_in_4bit=load_in_4bit,
        load_in_8bit=load_in_8bit,
        device=device,
        pad_to_square=pad_to_square,
    )
    config = CaptionRunConfig(
        captioner=captioner,
        template=template,
        llava=settings,
        attributes=attributes,
        splits=select_splits(split),
        batch_size=batch_size,
        shard_size=shard_size,
        num_shards=num_shards,
        shard_index=shard_index,
        overwrite=overwrite,
        progress=progress,
    )
    options = {"train_val": train_val or None, "variant": variant}
    options = {name: value for name, value in options.items() if value is not None}
    summary = caption_dataset(dataset, root, out, config, options)
    if os.environ.get("RANK", "0") == "0":  # one summary (summed over ranks) under torchrun
        console.print(format_summary(summary, out), highlight=False, soft_wrap=True)


@captions_app.command("show")
def captions_show(
    folder: Annotated[Path, typer.Argument(help="Caption folder written by `reid caption`.")],
    pid: Annotated[int | None, typer.Option(help="Only rows of this identity.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows to show.")] = 10,
) -> None:
    """Print a few caption rows as a table (relpath, pid, status, caption)."""
    from reid.captioning.audit import caption_rows, rows_table

    console.print(rows_table(caption_rows(folder, pid, limit)))


@captions_app.command("audit")
def captions_audit(
    folder: Annotated[Path, typer.Argument(help="Caption folder written by `reid caption`.")],
    attributes: Annotated[
        Path, typer.Option(help="Per-identity labels (.parquet/.csv with pid, or .mat).")
    ],
    template: Annotated[
        str | None, typer.Option(help="Template to read labels with (default: the folder's).")
    ] = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help='"table", or "json": {"labelled": N, "overall": .., "fields": [{"field": .., '
            '"agreement": .., ...}, ...]} (agreements in [0, 1]).',
        ),
    ] = "table",
) -> None:
    """Per-field agreement of the attributes read from captions with human labels."""
    import json

    from reid.captioning.audit import audit_captions, report_table

    if output_format not in ("table", "json"):
        raise ReIDError(f"unknown format {output_format!r}; valid: table, json")
    report = audit_captions(folder, attributes, template)
    if output_format == "json":
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        console.print(report_table(report))


# ----------------------------------------------------------------------------------------------
# reid evaluate, reid extract
# ----------------------------------------------------------------------------------------------


# reid evaluate (src/reid/evaluation/report.py; metrics.py, rerank.py, visualize.py) ------------


@app.command("evaluate")
def evaluate(
    features: Annotated[
        Path | None,
        typer.Option(
            help="Features file (.npz) with query_features (Q, D), gallery_features (G, D), "
            "query_pids, gallery_pids, query_camids, gallery_camids (integers), and optionally "
            "query_paths, gallery_paths (image paths, for --visualize).",
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None,
        typer.Option(
            help="Trained weights (model.safetensors of reid train): extract the query and "
            "gallery features of --dataset under --root (image encoder only; no text model).",
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(help="With --checkpoint: dataset name, e.g. market1501 or synthetic."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="With --checkpoint: images per feature batch.")
    ] = 128,
    workers: Annotated[
        int, typer.Option(min=0, help="With --checkpoint: data-loader worker processes.")
    ] = 2,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help='"table", or "json": {"mAP": .., "rank1": .., "rank5": .., "rank10": .., '
            '"mINP": ..} (fractions in [0, 1]).',
        ),
    ] = "table",
    metric: Annotated[
        str, typer.Option(help='"euclidean" (squared Euclidean) or "cosine" distance.')
    ] = "euclidean",
    rerank: Annotated[
        bool, typer.Option("--rerank", help="Apply k-reciprocal re-ranking (Zhong et al. 2017).")
    ] = False,
    k1: Annotated[int, typer.Option(min=1, help="Re-ranking: k-reciprocal neighbours.")] = 20,
    k2: Annotated[int, typer.Option(min=1, help="Re-ranking: query-expansion neighbours.")] = 6,
    lambda_value: Annotated[
        float,
        typer.Option("--lambda", min=0.0, max=1.0, help="Re-ranking: original-distance weight."),
    ] = 0.3,
    rerank_memory_gb: Annotated[
        float,
        typer.Option(
            "--rerank-memory-gb", min=0.0, help="Re-ranking refuses problems needing more (GiB)."
        ),
    ] = 4.0,
    visualize: Annotated[
        int,
        typer.Option(
            min=0,
            help="K > 0: write a PNG of the top-K gallery images of a few queries (green frame: "
            "same identity, red: another).",
        ),
    ] = 0,
    visualize_out: Annotated[
        Path, typer.Option("--visualize-out", "--out", help="PNG path of the --visualize picture.")
    ] = Path("ranked_lists.png"),
    visualize_queries: Annotated[
        int, typer.Option(min=1, help="Number of queries (rows) in the --visualize picture.")
    ] = 8,
    root: Annotated[
        Path | None,
        typer.Option(
            help="With --checkpoint: the dataset folder. With --features: the folder that "
            "relative query_paths/gallery_paths are relative to."
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help='Torch device, e.g. "cuda:0" (default: CPU).')
    ] = None,
) -> None:
    """Market-protocol mAP, CMC (R1, R5, R10) and mINP of query features against the gallery."""
    from reid.evaluation.feature_file import load_feature_file
    from reid.evaluation.report import EvaluationOptions, evaluate_inputs, format_report

    if (features is None) == (checkpoint is None):
        raise ReIDError(
            "give the features to evaluate: --features FILE.npz, or --checkpoint FILE with "
            "--dataset NAME --root DIR (exactly one input)"
        )
    if checkpoint is not None:
        from reid.evaluation.features import checkpoint_inputs

        if dataset is None or root is None:
            raise ReIDError("--checkpoint needs --dataset NAME and --root DIR")
        inputs = checkpoint_inputs(checkpoint, dataset, root, device, batch_size, workers)
    else:
        inputs = load_feature_file(features)
    options = EvaluationOptions(
        metric=metric,
        rerank=rerank,
        k1=k1,
        k2=k2,
        lambda_value=lambda_value,
        rerank_memory_limit=int(rerank_memory_gb * 2**30),
        visualize=visualize,
        visualize_queries=visualize_queries,
        picture=visualize_out,
        image_root=root,
        device=device,
    )
    typer.echo(format_report(evaluate_inputs(inputs, options), output_format))


@app.command("extract")
def extract(
    checkpoint: Annotated[
        Path, typer.Option(help="Trained weights (model.safetensors of reid train).")
    ],
    images: Annotated[
        Path, typer.Option(help="Folder of images (searched recursively: jpg, png, bmp, webp).")
    ],
    out: Annotated[
        Path,
        typer.Option(help="Output .npz: features (N, D) float32, L2-normalised; paths (N,)."),
    ],
    batch_size: Annotated[int, typer.Option(min=1, help="Images per batch.")] = 128,
    workers: Annotated[int, typer.Option(min=0, help="Data-loader worker processes.")] = 2,
    device: Annotated[
        str | None, typer.Option(help='Torch device, e.g. "cuda:0" (default: CPU).')
    ] = None,
) -> None:
    """Write the ReID features of every image in a folder (for deployment and search)."""
    from reid.evaluation.features import extract_folder
    from reid.training.checkpoint import load_model

    model = load_model(checkpoint, device or "cpu")
    count = extract_folder(model, images, out, batch_size, workers)
    console.print(f"wrote the features of {count} images to {out}")


# ----------------------------------------------------------------------------------------------
# reid train
# ----------------------------------------------------------------------------------------------


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

    from reid.config import load_config
    from reid.training.checkpoint import STATE_FILE
    from reid.training.loop import train

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


# ----------------------------------------------------------------------------------------------
# reid demo
# ----------------------------------------------------------------------------------------------


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
            help="'attributes' (the synthetic labels rendered into the caption template) or "
            "'llava' (a LLaVA-family model: --caption-model)."
        ),
    ] = "attributes",
    caption_model: Annotated[
        str, typer.Option(help="llava: hub id, local folder or builtin:NAME.")
    ] = "builtin:tiny-llava-synthetic",
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Config override for every trained method (repeatable)."),
    ] = None,
) -> None:
    """Run the whole pipeline on synthetic data: data, captions, audit, training, evaluation.

    Synthetic pedestrians -> captions (attribute labels by default; --captioner llava runs a LLaVA
    folder through the same code path as llava-1.5-7b) -> caption audit -> baseline and scgi
    trained on a tiny CLIP -> evaluation with ranked-list pictures. Nothing is downloaded; on 2 CPU
    cores it takes a few minutes (--quick: well under one). Writes OUT/results.json and results.md.
    """
    import time

    from reid.demo import DemoSettings, run_demo

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


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # python -m reid.cli ..., e.g. under accelerate launch or torchrun
    main()
