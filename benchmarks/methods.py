"""The papers' tables in miniature: every method from the pretrained tiny CLIP and from random init.

Each row is a method (``configs/synthetic_<method>.toml``) with a few ``--set`` overrides, trained
on one ``reid data synth`` dataset over several training seeds, from
``builtin:tiny-clip-synthetic`` (``pretrained``) or from the same architecture randomly
initialised (``none``). The ablations are those the papers report or imply and the method
configs can express today:

- scgi: without the CGI losses (pseudo-word alignment with the image and the caption), without
  CFF (its loss weight 0), K (learnable queries) in {1, 2, 4}, depth in {1, 2}, and captions from
  the attribute labels (the default), from the built-in tiny LLaVA, or shuffled across identities
  (each identity gets another identity's captions);
- scgi's switches, each set to the unofficial reimplementation's (NTDuckk/CLIPSCGI) variant
  against our default: element-wise token re-weighting, 3-layer ReLU mappers, the mean of the
  queries, the image-branch BNNecks, classifiers and SIE at ``new_module_lr`` instead of ``lr``
  ("heads at new lr", the behaviour before ``image_heads_lr`` existed), and all four together.
  ``configs/synthetic_scgi.toml`` trains everything at one rate (``lr`` = ``new_module_lr``), so
  there "heads at new lr" is the main row again; "scgi lr/10" and "scgi lr/10 heads at new lr"
  lower the visual rate tenfold (the papers' 5e-6 against 5e-5) to compare the two head rates,
  and "baseline lr/10" is their control (baseline at the same lowered rate);
- svll: without the text self-supervision, without the image self-supervision;
- clip-reid: with SIE and overlapping patches (stride 6 for the 8-pixel patches, 0.75 of a patch as
  CLIP-ReID's 12/16).

Not available (no switch in the method configs today): scgi without CGI as a module. CFF reads
the pseudo sentence that CGI writes, so CGI cannot be removed alone; the row "w/o CGI losses"
keeps the module (trained through CFF) and drops its two alignment losses.

One run folder per cell (``OUT/cells/ROW/seedS``); a cell with ``result.json`` is skipped, and an
interrupted one resumes from its ``state.pt``. The table (Markdown, also ``OUT/table.md``) gives per
row the mean +- std over seeds of mAP and rank-1, and the paired difference to ``baseline`` with
the same seed and init (mean +- std of the per-seed differences). Cells not run yet are counted.

    python benchmarks/methods.py --out runs/bench_methods            # the full bench
    python benchmarks/methods.py --out /tmp/bench --quick            # CI size: minutes
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

logger = logging.getLogger("bench_methods")

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CAPTION_METHODS = ("scgi",)
REIMPLEMENTATION_VARIANTS = (
    "token_weighting=elementwise",
    "mapper=relu3",
    "query_pooling=mean",
    "image_heads_lr=new",
)
"""The ``[method]`` values of NTDuckk/CLIPSCGI where scgi has a switch (its defaults are ours)."""


@dataclass(frozen=True)
class Row:
    """One row of the table: a method, its init, its overrides and its captions."""

    name: str
    method: str
    init: str = "pretrained"
    overrides: tuple[str, ...] = ()
    captions: str = "attributes"
    main: bool = False

    @property
    def slug(self) -> str:
        """Folder name of the row."""
        return self.name.replace(" ", "_").replace("/", "-").replace("=", "").replace("+", "")


def rows() -> list[Row]:
    """Every row, the main table first."""
    main = [
        Row(f"{method} ({init})", method, init, main=True)
        for method in ("baseline", "clip-reid", "scgi", "svll")
        for init in ("pretrained", "none")
    ]
    scgi = [
        ("scgi w/o CGI losses", ("image_alignment_weight=0", "caption_alignment_weight=0")),
        ("scgi w/o CFF", ("fusion_weight=0",)),
        ("scgi K=1", ("num_queries=1",)),
        ("scgi K=4", ("num_queries=4",)),
        ("scgi depth=2", ("depth=2",)),
        # the reimplementation's variant of each switch beside our default, then all of them
        ("scgi weighting=elementwise", ("token_weighting=elementwise",)),
        ("scgi mapper=relu3", ("mapper=relu3",)),
        ("scgi queries=mean", ("query_pooling=mean",)),
        ("scgi heads at new lr", ("image_heads_lr=new",)),
        ("scgi reimpl variants", REIMPLEMENTATION_VARIANTS),
        # the same head-rate pair with the visual rate 10x below new_module_lr, as in the papers
        ("scgi lr/10", ("lr=3e-4",)),
        ("scgi lr/10 heads at new lr", ("lr=3e-4", "image_heads_lr=new")),
    ]
    ablations = [Row(name, "scgi", overrides=tuple(f"method.{o}" for o in o_)) for name, o_ in scgi]
    ablations += [
        Row("scgi captions=tiny-llava", "scgi", captions="llava"),
        Row("scgi captions=shuffled", "scgi", captions="shuffled"),
        Row("svll w/o text SSL", "svll", overrides=("method.text_ssl_weight=0",)),
        Row("svll w/o image SSL", "svll", overrides=("method.image_ssl_weight=0",)),
        Row("clip-reid +SIE +OLP", "clip-reid", overrides=("model.sie=true", "model.stride=6")),
        Row("baseline lr/10", "baseline", overrides=("method.lr=3e-4",)),  # scgi lr/10's control
    ]
    return main + ablations


@dataclass
class Bench:
    """Where the bench lives and how big it is."""

    out: Path
    seeds: tuple[int, ...]
    data_seed: int
    ids: int
    cameras: int
    quick: bool
    captions: dict[str, Path] = field(default_factory=dict)

    @property
    def data(self) -> Path:
        """The synthetic dataset."""
        return self.out / "data"

    def prepare(self, needed: set[str]) -> None:
        """Make the dataset and the caption folders the rows need (each once)."""
        from vlreid.captioning.llava import LlavaSettings
        from vlreid.captioning.run import CaptionRunConfig, caption_dataset
        from vlreid.synthetic import make_synthetic_dataset

        if not (self.data / "synthetic.json").is_file():
            make_synthetic_dataset(self.data, self.ids, self.cameras, self.data_seed)
        folders = {name: self.out / "captions" / name for name in ("attributes", "llava")}
        labels = self.data / "attributes.parquet"
        for name in ("attributes", "llava") if "llava" in needed else ("attributes",):
            if not any(folders[name].glob("part-*.parquet")):
                settings = LlavaSettings(model="builtin:tiny-llava-synthetic", device="cpu")
                config = CaptionRunConfig(name, llava=settings, attributes=labels, batch_size=16)
                caption_dataset("synthetic", self.data, folders[name], config)
        folders["shuffled"] = self.out / "captions" / "shuffled"
        if not any(folders["shuffled"].glob("part-*.parquet")):
            shuffle_captions(folders["attributes"], folders["shuffled"], self.data_seed)
        self.captions = folders

    def overrides(self, row: Row, seed: int) -> list[str]:
        """The ``--set`` overrides of one cell."""
        values = [f"data.root={self.data}", f"train.seed={seed}", *row.overrides]
        values.append(
            f"model.pretrained={'none' if row.init == 'none' else 'builtin:tiny-clip-synthetic'}"
        )
        if row.method in CAPTION_METHODS:
            values.append(f"data.captions={self.captions[row.captions]}")
        if self.quick:
            values += ["stages.image.epochs=2", "stages.image.steps_per_epoch=2"]
            values += ["stages.image.warmup_epochs=1", "train.eval_every=2", "data.batch_size=16"]
            if row.method in ("clip-reid", "svll"):
                values += ["stages.prompt.epochs=2", "stages.prompt.steps_per_epoch=2"]
                values += ["stages.prompt.batch_size=16"]
        else:
            values += ["train.eval_every=60"]  # the final evaluation only
        return values

    def run_cell(self, row: Row, seed: int) -> dict[str, float]:
        """Train and evaluate one cell, or read its ``result.json``."""
        from vlreid.config import load_config
        from vlreid.evaluation.features import checkpoint_inputs
        from vlreid.evaluation.metrics import evaluate_features
        from vlreid.training.loop import train
        from vlreid.training.report import read_metrics

        folder = self.out / "cells" / row.slug / f"seed{seed}"
        result_file = folder / "result.json"
        if result_file.is_file():
            return json.loads(result_file.read_text())
        started = time.perf_counter()
        config = load_config(CONFIGS / f"synthetic_{row.method}.toml", self.overrides(row, seed))
        train(config, folder)
        inputs = checkpoint_inputs(
            folder / "model.safetensors", "synthetic", self.data, None, 256, 0
        )
        ranking = evaluate_features(
            *(inputs.query_features, inputs.gallery_features),
            *(inputs.query_pids, inputs.gallery_pids),
            *(inputs.query_camids, inputs.gallery_camids),
        )
        result = {
            "mAP": round(ranking.mAP, 4),
            "rank1": round(ranking.rank(1), 4),
            "seconds": round(time.perf_counter() - started, 1),
        }
        prompt = [
            r["loss"]
            for r in read_metrics(folder / "metrics.jsonl")
            if r.get("stage") == "prompt" and "loss" in r
        ]
        if prompt:
            result.update(
                prompt_loss_first=round(prompt[0], 4), prompt_loss_last=round(prompt[-1], 4)
            )
        result_file.write_text(json.dumps(result) + "\n")
        logger.info("%s seed %d: %s", row.name, seed, result)
        return result


def shuffle_captions(source: Path, target: Path, seed: int) -> None:
    """Give every identity the captions of another one (a seeded derangement of the pids)."""
    frame = pd.read_parquet(source)
    pids = sorted(frame["pid"].unique())
    generator = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(pids), generator=generator).tolist()
        if all(index != moved for index, moved in enumerate(order)):
            break
    donor = {pid: pids[moved] for pid, moved in zip(pids, order, strict=True)}
    first_caption = frame.groupby("pid")["caption"].first()
    shuffled = frame.copy()
    shuffled["caption"] = [first_caption[donor[pid]] for pid in frame["pid"]]
    target.mkdir(parents=True, exist_ok=True)
    shuffled.to_parquet(target / "part-00000.parquet", index=False)


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    deviation = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {deviation:.3f}"


def table(
    results: dict[tuple[str, int], dict[str, float]], all_rows: list[Row], seeds: tuple[int, ...]
) -> str:
    """The Markdown table of the finished cells."""
    lines = [
        "| row | init | seeds | mAP | rank-1 | ΔmAP vs baseline | Δrank-1 vs baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in all_rows:
        done = [seed for seed in seeds if (row.name, seed) in results]
        if not done:
            lines.append(f"| {row.name} | {row.init} | 0/{len(seeds)} | not run | | | |")
            continue
        base = f"baseline ({row.init})"
        cells = {
            metric: [results[(row.name, s)][metric] for s in done] for metric in ("mAP", "rank1")
        }
        paired = {
            metric: [
                results[(row.name, s)][metric] - results[(base, s)][metric]
                for s in done
                if (base, s) in results
            ]
            for metric in ("mAP", "rank1")
        }
        differences = (
            ["-", "-"] if row.name == base else [_spread(paired[m]) for m in ("mAP", "rank1")]
        )
        lines.append(
            f"| {row.name} | {row.init} | {len(done)}/{len(seeds)} | {_spread(cells['mAP'])} | "
            f"{_spread(cells['rank1'])} | {differences[0]} | {differences[1]} |"
        )
    for (name, seed), result in sorted(results.items()):
        if "prompt_loss_first" in result:
            first, last = result["prompt_loss_first"], result["prompt_loss_last"]
            lines.append(
                f"\n{name} seed {seed}: prompt-stage loss {first:.3f} (first epoch) -> "
                f"{last:.3f} (last), {100 * (1 - last / first):.0f}% lower"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    """Run the bench (resumably) and return the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench_methods"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data-seed", type=int, default=11, help="reid data synth --seed")
    parser.add_argument("--quick", action="store_true", help="CI size: 16 ids, 4 steps per stage")
    parser.add_argument("--rows", nargs="*", default=None, help="only rows with these names")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--table-only", action="store_true", help="print the finished cells only")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    all_rows = rows() if args.rows is None else [row for row in rows() if row.name in args.rows]
    ids, cameras = (16, 3) if args.quick else (60, 4)
    bench = Bench(args.out, tuple(args.seeds), args.data_seed, ids, cameras, args.quick)
    if not args.table_only:
        bench.prepare({row.captions for row in all_rows})
    results: dict[tuple[str, int], dict[str, float]] = {}
    # baseline (every row's reference) first, then the other methods, then the ablations
    baselines = [row for row in all_rows if row.main and row.method == "baseline"]
    others = [row for row in all_rows if row.main and row.method != "baseline"]
    order = [(row, seed) for seed in bench.seeds for row in baselines]
    order += [(row, seed) for seed in bench.seeds for row in others]
    order += [(row, seed) for seed in bench.seeds for row in all_rows if not row.main]
    for row, seed in order:
        finished = bench.out / "cells" / row.slug / f"seed{seed}" / "result.json"
        if args.table_only and not finished.is_file():
            continue
        results[(row.name, seed)] = bench.run_cell(row, seed)
        (args.out / "table.md").write_text(table(results, all_rows, bench.seeds))
    text = table(results, all_rows, bench.seeds)
    print(text)
    return text


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    main()
