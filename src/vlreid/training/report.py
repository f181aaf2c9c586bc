"""The run's record: ``metrics.jsonl`` (one JSON object per epoch) and the curve picture.

Each line of ``metrics.jsonl`` has ``epoch`` (run-wide, 1-based; 0 is the untrained model when
``train.eval_at_start``), ``stage``, ``stage_epoch``, ``step`` (optimizer steps so far), ``lr`` (per
parameter group), the epoch means of the method's loss terms (``loss``, ``id``, ``triplet``...),
``images_per_second``, ``seconds``, and ``mAP``, ``rank1``, ``rank5``, ``rank10``, ``mINP`` when
the epoch was evaluated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (empty if the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def append_metrics(path: str | Path, record: dict[str, Any]) -> None:
    """Append one record as a line."""
    with Path(path).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")


def truncate_metrics(path: str | Path, last_epoch: int) -> None:
    """Keep the records up to run-wide epoch ``last_epoch`` (those of a resumed checkpoint)."""
    path = Path(path)
    kept = [record for record in read_metrics(path) if record["epoch"] <= last_epoch]
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in kept), "utf-8")
    temporary.replace(path)


def plot_curves(records: list[dict[str, Any]], out: str | Path) -> None:
    """Loss per epoch (one line per stage) and mAP / rank-1 of the evaluated epochs, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (loss_axis, map_axis) = plt.subplots(1, 2, figsize=(10, 3.8))
    stages = list(dict.fromkeys(r["stage"] for r in records if "loss" in r))
    for stage in stages:
        rows = [r for r in records if r["stage"] == stage and "loss" in r]
        loss_axis.plot([r["epoch"] for r in rows], [r["loss"] for r in rows], label=stage)
    loss_axis.set(xlabel="epoch", ylabel="training loss", title="loss")
    if stages:
        loss_axis.legend()
    evaluated = [r for r in records if "mAP" in r]
    for key in ("mAP", "rank1"):
        map_axis.plot([r["epoch"] for r in evaluated], [r[key] for r in evaluated], "o-", label=key)
    map_axis.set(xlabel="epoch", ylabel="score", title="query / gallery", ylim=(0, 1))
    if evaluated:
        map_axis.legend()
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.14, top=0.91, wspace=0.22)
    out = Path(out)
    temporary = out.with_name(f".{out.name}.tmp.png")
    figure.savefig(temporary, dpi=100)
    plt.close(figure)
    temporary.replace(out)
