"""The split table of ``reid data stats``, as text or JSON."""

from __future__ import annotations

import json
from pathlib import Path

from vlreid.datasets.manifest import SPLITS, split_statistics
from vlreid.errors import ReIDError

OUTPUT_FORMATS: tuple[str, ...] = ("table", "json")


def format_split_table(statistics: dict[str, dict[str, int]], title: str) -> str:
    """The table the reference toolkits print after loading a dataset.

    Args:
        statistics: Output of :func:`vlreid.datasets.manifest.split_statistics`.
        title: First line, e.g. ``market1501 at /data/Market-1501-v15.09.15``.
    """
    rule = "  " + "-" * 41
    lines = [title, rule, "  subset   | # ids | # images | # cameras", rule]
    for split in SPLITS:
        row = statistics[split]
        lines.append(f"  {split:<8} | {row['ids']:5d} | {row['images']:8d} | {row['cameras']:9d}")
    lines.append(rule)
    return "\n".join(lines)


def dataset_report(
    dataset: str, root: str | Path, output_format: str = "table", **options: object
) -> str:
    """Parse a dataset and render its split statistics.

    Args:
        dataset: A name of :data:`vlreid.datasets.PARSERS`.
        root: The dataset folder or a parent holding it.
        output_format: ``table`` (human-readable) or ``json``:
            ``{"train": {"ids": N, "images": N, "cameras": N}, "query": {...}, "gallery": {...}}``.
        **options: Parser options (see :func:`vlreid.datasets.load_manifest`).

    Returns:
        The rendered text, without a trailing newline.

    Raises:
        ReIDError: Unknown format, dataset or option, or a bad dataset folder.
    """
    if output_format not in OUTPUT_FORMATS:
        raise ReIDError(f"unknown format {output_format!r}; valid: {', '.join(OUTPUT_FORMATS)}")
    from vlreid.datasets import load_manifest

    manifest = load_manifest(dataset, root, **options)
    statistics = split_statistics(manifest.frame)
    if output_format == "json":
        return json.dumps(statistics, indent=2)
    settings = ", ".join(f"{name}={value}" for name, value in options.items())
    title = f"{dataset}{f' ({settings})' if settings else ''} at {manifest.root}"
    return format_split_table(statistics, title)
