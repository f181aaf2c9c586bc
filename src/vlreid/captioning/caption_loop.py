"""The captioning loop: decode a batch ahead in a thread, caption, parse, write shards."""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
from PIL import Image

from vlreid.captioning.progress import caption_progress
from vlreid.captioning.protocol import Captioner, CaptionItem
from vlreid.captioning.retry import RetryingWriter
from vlreid.captioning.shards import ShardWriter
from vlreid.templates import ParsedAnswer, Template, parse_answer


def load_batch(
    records: list[dict[str, Any]], dataset_root: Path, decode: bool
) -> tuple[list[CaptionItem], dict[str, str]]:
    """Items to caption and ``relpath -> reason`` for the images that could not be read."""
    items: list[CaptionItem] = []
    errors: dict[str, str] = {}
    for record in records:
        image = None
        if decode:
            try:
                with Image.open(dataset_root / record["relpath"]) as opened:
                    image = opened.convert("RGB")
            except (OSError, ValueError, Image.DecompressionBombError) as error:
                errors[record["relpath"]] = f"{type(error).__name__}: {error}"
                continue
        items.append(CaptionItem(record["relpath"], int(record["pid"]), image))
    return items, errors


def caption_into_shards(
    pending: pd.DataFrame,
    dataset_root: Path,
    captioner: Captioner,
    template: Template,
    writer: ShardWriter | RetryingWriter,
    batch_size: int,
    shard_size: int,
    show_progress: bool,
) -> Counter[str]:
    """Caption ``pending`` manifest rows into shards of about ``shard_size`` rows.

    Args:
        pending: Manifest rows still to caption.
        dataset_root: Folder the ``relpath`` column is relative to.
        captioner: The backend.
        template: The template answers are parsed against.
        writer: This worker's shard writer (a :class:`RetryingWriter` puts rows captioned
            again back into their shards).
        batch_size: Images per :meth:`Captioner.describe` call.
        shard_size: Rows per shard (a shard is written once at least this many are buffered).
        show_progress: Draw the progress bar.

    Returns:
        Rows written per status.
    """
    records = pending[["dataset", "split", "relpath", "pid", "camid"]].to_dict("records")
    batches = [records[start : start + batch_size] for start in range(0, len(records), batch_size)]
    provenance = {
        "captioner": captioner.name,
        "model": captioner.model,
        "template": template.name,
        "template_version": str(template.version),
    }
    counts: Counter[str] = Counter()
    parsed_answers: dict[str, ParsedAnswer] = {}
    buffer: list[dict[str, Any]] = []
    with (
        ThreadPoolExecutor(max_workers=1) as pool,
        caption_progress(len(records), enabled=show_progress) as progress,
    ):
        future = (
            pool.submit(load_batch, batches[0], dataset_root, captioner.needs_images)
            if batches
            else None
        )
        for index, batch in enumerate(batches):
            items, errors = future.result()
            if index + 1 < len(batches):
                future = pool.submit(
                    load_batch, batches[index + 1], dataset_root, captioner.needs_images
                )
            started = time.perf_counter()
            answers = captioner.describe(items) if items else []
            seconds = (time.perf_counter() - started) / max(len(items), 1)
            answer_of = {item.relpath: answer for item, answer in zip(items, answers, strict=True)}
            for record in batch:
                row = {**record, **provenance, "error": errors.get(record["relpath"])}
                if row["error"] is not None:
                    row.update(
                        caption=None, attributes="{}", raw="", status="image_error", seconds=0.0
                    )
                else:
                    raw = answer_of[record["relpath"]]
                    if raw not in parsed_answers:  # a trained captioner repeats itself a lot
                        parsed_answers[raw] = parse_answer(raw, template)
                    parsed = parsed_answers[raw]
                    row.update(
                        caption=parsed.caption,
                        attributes=json.dumps(parsed.attributes, sort_keys=True),
                        raw=raw,
                        status=parsed.status,
                        seconds=seconds,
                    )
                counts[row["status"]] += 1
                buffer.append(row)
            if len(buffer) >= shard_size:
                writer.write(buffer)
                buffer = []
            progress(len(batch))
        writer.write(buffer)
    return counts
