"""Options shared by several commands, defined once so that they are spelled the same everywhere
(the names are those of the run config: ``num_workers``, ``missing_captions``)."""

from __future__ import annotations

from typing import Annotated

import typer

TrainValOption = Annotated[
    bool,
    typer.Option(
        "--train-val", help="msmt17 only: train split = list_train.txt + list_val.txt (CLIP-ReID)."
    ),
]
VariantOption = Annotated[
    str | None, typer.Option(help="cuhk03 only: 'labeled' (default) or 'detected' boxes.")
]
TestSizeOption = Annotated[
    int | None, typer.Option(help="vehicleid only: test list 800 (default), 1600 or 2400.")
]
DrawSeedOption = Annotated[
    int | None,
    typer.Option(
        "--seed", help="vehicleid only: seed of the one-image-per-vehicle gallery draw (0)."
    ),
]
NumWorkersOption = Annotated[
    int, typer.Option("--num-workers", min=0, help="Data-loader worker processes (0: none).")
]
DeviceOption = Annotated[
    str | None, typer.Option(help='Torch device: "cpu", "cuda", "cuda:1"... (default: CPU).')
]
OverridesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override a config value, e.g. --set data.root=DIR --set method.lr=1e-5 "
        "(repeatable; 'none' clears an optional value).",
    ),
]


def parser_options(
    train_val: bool = False,
    variant: str | None = None,
    test_size: int | None = None,
    seed: int | None = None,
) -> dict[str, object]:
    """The dataset-parser options the user gave (the parser refuses those of other datasets)."""
    options = {"train_val": train_val or None, "variant": variant, "test_size": test_size}
    options["seed"] = seed
    return {name: value for name, value in options.items() if value is not None}
