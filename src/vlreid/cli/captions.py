"""``reid caption``, ``reid captions show``, ``reid captions audit``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from vlreid.cli._app import app, captions_app, console
from vlreid.cli._command import ReIDCommand, on_interrupt
from vlreid.cli._options import TrainValOption, VariantOption, parser_options
from vlreid.errors import ReIDError


@app.command("caption", cls=ReIDCommand)
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
        typer.Option(
            help="attributes: per-identity labels (.parquet/.csv with pid, or .mat); default for "
            "synthetic: the dataset's own attributes.parquet."
        ),
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
    train_val: TrainValOption = False,
    variant: VariantOption = None,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
) -> None:
    """Caption a dataset into resumable Parquet shards (read them with pd.read_parquet(OUT))."""
    import os

    from vlreid.captioning.llava import LlavaSettings
    from vlreid.captioning.run import (
        CaptionRunConfig,
        caption_dataset,
        format_summary,
        select_splits,
    )
    from vlreid.paths import absolute_if_path

    settings = LlavaSettings(
        model=absolute_if_path(model),
        max_new_tokens=max_new_tokens,
        dtype=dtype,
        load_in_4bit=load_in_4bit,
        load_in_8bit=load_in_8bit,
        device=device,
        pad_to_square=pad_to_square,
    )
    config = CaptionRunConfig(
        captioner=captioner,
        template=absolute_if_path(template) if template.endswith(".toml") else template,
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
    summary = caption_dataset(dataset, root, out, config, parser_options(train_val, variant))
    if os.environ.get("RANK", "0") == "0":  # one summary (summed over ranks) under torchrun
        console.print(format_summary(summary, out), highlight=False, soft_wrap=True)


@on_interrupt("caption")
def _caption_interrupted(params: dict[str, Any]) -> str:
    from vlreid.captioning.shards import shard_paths

    out: Path = params["out"]
    count = len(shard_paths(out)) if out.is_dir() else 0
    return (
        f"interrupted: {out} keeps its {count} finished shard(s) (the rows of the shard being "
        "filled are lost); run the same command to caption the rest"
    )


@captions_app.command("show", cls=ReIDCommand)
def captions_show(
    folder: Annotated[Path, typer.Argument(help="Caption folder written by `reid caption`.")],
    pid: Annotated[int | None, typer.Option(help="Only rows of this identity.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Rows to show.")] = 10,
) -> None:
    """Print a few caption rows as a table (relpath, pid, status, caption)."""
    from vlreid.captioning.audit import caption_rows, rows_table

    console.print(rows_table(caption_rows(folder, pid, limit)))


@captions_app.command("audit", cls=ReIDCommand)
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

    from vlreid.captioning.audit import audit_captions, report_table

    if output_format not in ("table", "json"):
        raise ReIDError(f"unknown format {output_format!r}; valid: table, json")
    report = audit_captions(folder, attributes, template)
    if output_format == "json":
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        console.print(report_table(report))
