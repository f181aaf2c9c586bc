"""The run's record: ``metrics.jsonl`` (one JSON object per epoch) and the curve picture.

Each line of ``metrics.jsonl`` has ``epoch`` (run-wide, 1-based; 0 is the untrained model when
``train.eval_at_start``), ``stage``, ``stage_epoch``, ``step`` (optimizer steps so far), ``lr`` (per
parameter group), the epoch means of the method's loss terms (``loss``, ``id``, ``triplet``...),
``images_per_second``, ``seconds``, and ``mAP``, ``rank1``, ``rank5``, ``rank10``, ``mINP`` when
the epoch was evaluated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"


@dataclass(frozen=True)
class EpochRecord:
    """One line of ``metrics.jsonl``: an epoch trained (see the module docstring).

    Attributes:
        epoch: Run-wide epoch, 1-based.
        stage: The stage's name.
        stage_epoch: Epoch within the stage, 1-based.
        step: Optimizer steps so far.
        lr: Learning rate per parameter-group name.
        terms: Epoch means of the loss terms (``loss``, ``id``, ...), averaged over processes.
        images_per_second: Training images per second, all processes together.
        seconds: Wall time of the epoch's training steps.
        scores: The evaluation after the epoch (``mAP``, ``rank1``...), or None.
    """

    epoch: int
    stage: str
    stage_epoch: int
    step: int
    lr: dict[str, float]
    terms: dict[str, float]
    images_per_second: float
    seconds: float
    scores: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``metrics.jsonl`` object: terms and scores flattened into it."""
        position = {"epoch": self.epoch, "stage": self.stage, "stage_epoch": self.stage_epoch}
        timing = {"images_per_second": self.images_per_second, "seconds": self.seconds}
        return {**position, "step": self.step, "lr": self.lr, **self.terms, **timing,
                **(self.scores or {})}  # fmt: skip


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


def write_epoch(run_dir: Path, record: EpochRecord, stage_done: bool) -> None:
    """Append ``record`` to ``metrics.jsonl``; redraw ``curves.png`` after an evaluation or when
    the epoch ends its stage."""
    append_metrics(run_dir / METRICS_FILE, record.to_dict())
    if record.scores or stage_done:
        plot_curves(read_metrics(run_dir / METRICS_FILE), run_dir / CURVES_FILE)


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
