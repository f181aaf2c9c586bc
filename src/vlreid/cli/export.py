"""``reid export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vlreid.cli._app import app, console, error_console
from vlreid.cli._command import ReIDCommand
from vlreid.errors import ReIDError

EXPORT_FORMATS: tuple[str, ...] = ("onnx", "folder")


@app.command("export", cls=ReIDCommand)
def export(
    checkpoint: Annotated[
        str,
        typer.Option(
            help="model.safetensors of reid train, a model folder, or a Hub repo owner/name."
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="onnx: the .onnx file (sidecar: OUT.json). folder: the folder.")
    ],
    export_format: Annotated[
        str, typer.Option("--format", help='"onnx" (image encoder + sidecar) or "folder".')
    ] = "onnx",
    images: Annotated[
        Path | None, typer.Option(help="onnx: folder of images for the parity check.")
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(help="onnx: check parity on this dataset's query images (with --root)."),
    ] = None,
    root: Annotated[Path | None, typer.Option(help="onnx: the --dataset folder.")] = None,
    parity_images: Annotated[
        int, typer.Option(min=2, help="onnx: at most this many images in the parity check.")
    ] = 256,
    tolerance: Annotated[
        float, typer.Option(min=0.0, help="onnx: allowed |onnx - torch| per feature element.")
    ] = 1e-4,
    opset: Annotated[int, typer.Option(min=7, help="onnx: ONNX opset.")] = 17,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="onnx: skip the parity check (not recommended).")
    ] = False,
) -> None:
    """Export a trained model: ONNX with a preprocessing sidecar, or a shareable model folder.

    The ONNX file is checked against PyTorch with onnxruntime after writing; exit status 1 when
    its features or rankings differ.
    """
    if export_format not in EXPORT_FORMATS:
        raise ReIDError(f"unknown --format {export_format!r}; expected one of {EXPORT_FORMATS}")
    if export_format == "folder":
        from vlreid.export.folder import export_folder

        export_folder(checkpoint, out)
        console.print(f"wrote the model folder {out} (config.json, model.safetensors, README.md)")
        return
    if not no_check and (images is None) == (dataset is None):
        raise ReIDError(
            "the parity check needs images: give --images DIR or --dataset NAME --root DIR "
            "(exactly one), or --no-check"
        )
    if dataset is not None and root is None:
        raise ReIDError("--dataset needs --root DIR")
    from vlreid.export.onnx_file import export_onnx
    from vlreid.export.parity import check_parity, folder_images, query_images

    camids = None
    if not no_check:  # read the images before the export, so a bad path fails fast
        if images is not None:
            paths = folder_images(images, parity_images)
        else:
            paths, camids = query_images(dataset, root, parity_images)
    exported = export_onnx(checkpoint, out, opset)
    console.print(f"wrote {exported.path} and {exported.sidecar_path}")
    if no_check:
        error_console.print("warning: the ONNX model was not checked against PyTorch")
        return
    report = check_parity(exported.path, exported.sidecar, exported.model, paths, camids, tolerance)
    verdict = "parity ok" if report.passed else "parity failed"
    line = f"{verdict}: {report.describe()}"
    (console if report.passed else error_console).print(line, highlight=False, soft_wrap=True)
    if not report.passed:
        raise typer.Exit(code=1)
