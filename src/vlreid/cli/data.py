"""``reid data stats``, ``reid data load``, ``reid data synth``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vlreid.cli._app import console, data_app
from vlreid.cli._command import ReIDCommand
from vlreid.cli._options import (
    DrawSeedOption,
    NumWorkersOption,
    TestSizeOption,
    TrainValOption,
    VariantOption,
    parser_options,
)

# reid data stats (src/vlreid/datasets/statistics.py, parsers in src/vlreid/datasets/) -------------


@data_app.command("stats", cls=ReIDCommand)
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
    train_val: TrainValOption = False,
    variant: VariantOption = None,
    test_size: TestSizeOption = None,
    seed: DrawSeedOption = None,
) -> None:
    """Parse a benchmark folder, check its layout and print the split statistics."""
    from vlreid.datasets.statistics import dataset_report

    # Only the options the user gave reach the parser, which rejects those of other datasets.
    options = parser_options(train_val, variant, test_size, seed)
    typer.echo(dataset_report(dataset, root, output_format, **options))


@data_app.command("load", cls=ReIDCommand)
def data_load(
    dataset: Annotated[str, typer.Option(help="Dataset name, e.g. market1501 or synthetic.")],
    root: Annotated[Path, typer.Option(help="Dataset folder (or its parent).")],
    captions: Annotated[
        Path | None,
        typer.Option(help="Caption shard folder (part-*.parquet) to join by relpath."),
    ] = None,
    missing_captions: Annotated[
        str,
        typer.Option(
            help="Images without a usable caption: 'error', or 'fallback' ('A photo of a "
            "person.'), as data.missing_captions of a run config."
        ),
    ] = "error",
    epochs: Annotated[int, typer.Option(min=1, help="Epochs to iterate.")] = 1,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per batch (P x K).")] = 64,
    num_instances: Annotated[int, typer.Option(min=1, help="K: images per identity.")] = 4,
    cache: Annotated[
        str | None,
        typer.Option(help="'memory': decode and resize every image once, keep it in RAM."),
    ] = None,
    num_workers: NumWorkersOption = 2,
    seed: Annotated[int, typer.Option(help="Seed of the sampler and augmentation.")] = 0,
    train_val: TrainValOption = False,
) -> None:
    """Iterate the training loader (P x K sampler, augmentation) and print its images/s."""
    from vlreid.config import DataConfig
    from vlreid.datasets.load_check import load_and_run_train_epochs
    from vlreid.preprocessing import Preprocessing

    data = DataConfig(
        dataset=dataset,
        root=str(root),
        options={"train_val": True} if train_val else {},
        captions=str(captions) if captions else None,
        missing_captions=missing_captions,
        batch_size=batch_size,
        num_instances=num_instances,
        num_workers=num_workers,
        cache=cache,
    )
    result = load_and_run_train_epochs(data, Preprocessing(), seed, epochs=epochs)
    console.print(
        f"{result.images} images in {result.batches} batches over {epochs} epoch(s): "
        f"{result.images_per_second:.0f} images/s (setup {result.setup_seconds:.2f} s)"
    )


# reid data synth (src/vlreid/synthetic/dataset.py) ---------------------------------------------


@data_app.command("synth", cls=ReIDCommand)
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
    from vlreid.synthetic import make_synthetic_dataset

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
