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
    seed: Annotated[int, typer.Option(help="Random seed; same arguments give identical files.")] = 0,
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
        typer.Option(help="Folder that relative query_paths/gallery_paths are relative to."),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help='Torch device, e.g. "cuda:0" (default: CPU).')
    ] = None,
) -> None:
    """Market-protocol mAP, CMC (R1, R5, R10) and mINP of query features against the gallery."""
    from reid.evaluation.feature_file import load_feature_file
    from reid.evaluation.report import EvaluationOptions, evaluate_inputs, format_report

    # One input source today; a checkpoint (--checkpoint) is the second, exclusive one.
    if features is None:
        raise ReIDError("give the features to evaluate: --features FILE.npz")
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


# ----------------------------------------------------------------------------------------------
# reid train
# ----------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------
# reid demo
# ----------------------------------------------------------------------------------------------


def main() -> None:
    """Console-script entry point."""
    app()
