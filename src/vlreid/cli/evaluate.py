"""``reid evaluate``, ``reid extract``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vlreid.cli._app import app, console, error_console
from vlreid.cli._command import ReIDCommand
from vlreid.cli._options import (
    DeviceOption,
    DrawSeedOption,
    NumWorkersOption,
    TestSizeOption,
    TrainValOption,
    VariantOption,
    parser_options,
)
from vlreid.errors import ReIDError

# reid evaluate (src/vlreid/evaluation/scoring.py; metrics.py, rerank.py, visualize.py) ------------


@app.command("evaluate", cls=ReIDCommand)
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
    clip: Annotated[
        str | None,
        typer.Option(
            help="A pretrained CLIP's image tower, no ReID training (zero-shot): "
            "builtin:tiny-clip-synthetic, an open_clip NAME:TAG (ViT-B-16:openai), or a local "
            "weights file with open_clip_config.json beside it; needs --dataset and --root.",
        ),
    ] = None,
    untrained: Annotated[
        bool,
        typer.Option(
            "--untrained", help="With --clip: the same architecture randomly initialised (seed 0)."
        ),
    ] = False,
    dataset: Annotated[
        str | None,
        typer.Option(help="With --checkpoint or --clip: dataset name, e.g. synthetic."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="With --checkpoint: images per feature batch.")
    ] = 128,
    num_workers: NumWorkersOption = 2,
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
        bool,
        typer.Option(
            "--rerank",
            help="Apply k-reciprocal re-ranking (Zhong et al. 2017) with the k1, k2, lambda of "
            "the checkpoint's run config (train.rerank_k1, rerank_k2, rerank_lambda), else 20, "
            "6, 0.3; --k1, --k2, --lambda override them. The table says which were used.",
        ),
    ] = False,
    k1: Annotated[
        int | None, typer.Option(min=1, help="Re-ranking: k-reciprocal neighbours.")
    ] = None,
    k2: Annotated[
        int | None, typer.Option(min=1, help="Re-ranking: query-expansion neighbours.")
    ] = None,
    lambda_value: Annotated[
        float | None,
        typer.Option("--lambda", min=0.0, max=1.0, help="Re-ranking: original-distance weight."),
    ] = None,
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
    device: DeviceOption = None,
    train_val: TrainValOption = False,
    variant: VariantOption = None,
    test_size: TestSizeOption = None,
    seed: DrawSeedOption = None,
    trials: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="vehicleid only: average over this many random one-image-per-vehicle galleries "
            "of the test list, VehicleID's protocol (default 10, seeded by --seed); 0: the one "
            "draw of the query/gallery split.",
        ),
    ] = None,
    expect: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=VALUE:TOLERANCE, e.g. mAP=0.552:0.01 (NAME: mAP, rank1, rank5, rank10, "
            "mINP; fractions). Repeatable. Exit with status 1 when a figure is outside its range.",
        ),
    ] = None,
) -> None:
    """Market-protocol mAP, CMC (R1, R5, R10) and mINP of query features against the gallery.

    For --dataset vehicleid: VehicleID's protocol, the mean over --trials random galleries.
    """
    from vlreid.evaluation.expect import failed_expectations, parse_expectation
    from vlreid.evaluation.feature_file import load_feature_file
    from vlreid.evaluation.scoring import (
        EvaluationOptions,
        check_options,
        evaluate_inputs,
        format_report,
        rerank_parameters,
    )

    expectations = [parse_expectation(text) for text in expect or []]
    provenance = None

    if [features, checkpoint, clip].count(None) != 2:
        raise ReIDError(
            "give the features to evaluate: --features FILE.npz, or --checkpoint FILE or "
            "--clip MODEL with --dataset NAME --root DIR (exactly one input)"
        )
    if (checkpoint is not None or clip is not None) and (dataset is None or root is None):
        flag = "--checkpoint" if checkpoint is not None else "--clip"
        raise ReIDError(f"{flag} needs --dataset NAME and --root DIR")
    if not rerank and (k1, k2, lambda_value) != (None, None, None):
        raise ReIDError("--k1, --k2 and --lambda are re-ranking's parameters: add --rerank")
    if trials is not None and dataset != "vehicleid":
        raise ReIDError("--trials is VehicleID's protocol: it needs --dataset vehicleid")
    if trials is None:
        trials = 10 if dataset == "vehicleid" and not rerank else 0
    metadata: dict[str, str] = {}
    run_config = None
    if checkpoint is not None:  # its run config gives the re-ranking parameters
        from vlreid.model.folder import resolve_weights
        from vlreid.model.weights import read_metadata, recorded_run_config

        metadata = read_metadata(resolve_weights(checkpoint))
        run_config = recorded_run_config(metadata, checkpoint)
    options = EvaluationOptions(
        metric=metric,
        rerank=rerank_parameters(run_config, k1, k2, lambda_value, str(checkpoint))
        if rerank
        else None,
        rerank_memory_limit=int(rerank_memory_gb * 2**30),
        visualize=visualize,
        visualize_queries=visualize_queries,
        picture=visualize_out,
        image_root=root,
        device=device,
        vehicleid_trials=trials,
        trial_seed=seed or 0,
    )
    check_options(options, output_format)  # before minutes of feature extraction
    if clip is not None:
        from vlreid.evaluation.zero_shot import clip_inputs

        inputs = clip_inputs(clip, dataset, root, untrained, device, batch_size, num_workers)
    elif checkpoint is not None:
        from vlreid.evaluation.features import checkpoint_inputs
        from vlreid.model.weights import checkpoint_provenance

        dataset_options = parser_options(train_val, variant, test_size, seed)
        inputs = checkpoint_inputs(
            checkpoint, dataset, root, device, batch_size, num_workers, dataset_options
        )
        provenance = checkpoint_provenance(metadata)
    else:
        inputs = load_feature_file(features)
    report = evaluate_inputs(inputs, options)
    typer.echo(format_report(report, output_format, provenance))
    if expectations:
        summary = report.result.summary()
        failed = failed_expectations(summary, expectations)
        if failed:
            line = f"expect failed: {'; '.join(failed)}"
            error_console.print(line, highlight=False, soft_wrap=True)
            raise typer.Exit(code=1)
        lines = [expectation.describe(summary[expectation.name]) for expectation in expectations]
        line = f"expect ok: {'; '.join(lines)}"
        error_console.print(line, highlight=False, soft_wrap=True)


@app.command("extract", cls=ReIDCommand)
def extract(
    checkpoint: Annotated[
        Path, typer.Option(help="Trained weights (model.safetensors of reid train).")
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Output .npz. With --images: features (N, D) float32, L2-normalised, and paths "
            "(N,) relative to the folder. With --dataset: the features file that reid evaluate "
            "--features reads (query/gallery features, pids, camids, absolute paths)."
        ),
    ],
    images: Annotated[
        Path | None,
        typer.Option(help="Folder of images (searched recursively: jpg, png, bmp, webp)."),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(help="Instead of --images: the query and gallery of this dataset (--root)."),
    ] = None,
    root: Annotated[Path | None, typer.Option(help="With --dataset: the dataset folder.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per batch.")] = 128,
    num_workers: NumWorkersOption = 2,
    device: DeviceOption = None,
    train_val: TrainValOption = False,
    variant: VariantOption = None,
    test_size: TestSizeOption = None,
    seed: DrawSeedOption = None,
) -> None:
    """Write the ReID features of a folder of images, or of a dataset's query and gallery."""
    from vlreid.evaluation.feature_file import save_feature_file
    from vlreid.evaluation.features import checkpoint_features, extract_folder
    from vlreid.model import load_model

    if (images is None) == (dataset is None):
        raise ReIDError(
            "give the images to extract: --images DIR, or --dataset NAME --root DIR (exactly one)"
        )
    if dataset is not None and root is None:
        raise ReIDError("--dataset needs --root DIR (the dataset folder)")
    model = load_model(checkpoint, device or "cpu")
    if images is not None:
        count = extract_folder(model, images, out, batch_size, num_workers)
        console.print(
            f"wrote the features of {count} images to {out}", highlight=False, soft_wrap=True
        )
        return
    dataset_options = parser_options(train_val, variant, test_size, seed)
    arrays = checkpoint_features(model, dataset, root, batch_size, num_workers, **dataset_options)
    save_feature_file(out, arrays)
    console.print(
        f"wrote {len(arrays['query_pids'])} query and {len(arrays['gallery_pids'])} gallery "
        f"features to {out} (reid evaluate --features {out})",
        highlight=False,
        soft_wrap=True,
    )
