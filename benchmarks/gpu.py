"""What a user of a GPU node plans with, each figure next to its baseline in the same run.

1. Captioning with a model of LLaVA-1.5-7B's exact architecture (its public config below: CLIP
   ViT-L/14-336 vision tower, 2-layer GELU projector, Llama-2-7B; random weights built directly in
   bf16 on the GPU, nothing downloaded) through the real pipeline (``LlavaCaptioner`` +
   ``caption_manifest``: JPEG decoding, padding, processor, generate, parsing, Parquet shards).
   Answers have a fixed length (``min_new_tokens = max_new_tokens``). Images/s at batch 1 against
   8, 16 and 32, in bf16 and with 4-bit weights (bitsandbytes, the model saved and reloaded
   through ``load_in_4bit``), and the peak GPU memory of each.
2. Training: ``vlreid.training.loop.train`` of each method on ViT-B/16 at 256 x 128, batch 64,
   bf16 (random init), on the procedural dataset: the loop's images/s of the last epoch of each
   stage (the loop includes waiting for the loader) beside the loader's images/s alone, and the
   peak GPU memory.
3. Evaluation at MSMT17 size (11,659 x 82,161, 512-d) on the GPU: ``evaluate_features`` against
   the same chunked distance computation alone.

Without CUDA (or with ``--toy``) every part runs at toy sizes in under a minute on a CPU: a tiny
LLaVA (same builder), the tiny CLIP of ``configs/synthetic_*.toml``, a 300 x 2,000 evaluation.
It prints a table and, with ``--json``, writes the figures. Run::

    python benchmarks/gpu.py [--toy] [--json gpu.json] [--skip-4bit]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parent
CONFIGS = BENCHMARKS.parent / "configs"
METHODS = ("baseline", "clip-reid", "svll", "scgi")
LLAVA_15_7B = {  # llava-hf/llava-1.5-7b-hf config.json
    "vision": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24,
               "num_attention_heads": 16, "image_size": 336, "patch_size": 14,
               "projection_dim": 768, "hidden_act": "quick_gelu"},
    "text": {"vocab_size": 32064, "hidden_size": 4096, "intermediate_size": 11008,
             "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32,
             "max_position_embeddings": 4096, "rms_norm_eps": 1e-5},
    "llava": {"projector_hidden_act": "gelu", "vision_feature_layer": -2,
              "vision_feature_select_strategy": "default"},
}  # fmt: skip
TOY_LLAVA = {
    "vision": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
               "num_attention_heads": 2, "image_size": 32, "patch_size": 8, "projection_dim": 32},
    "text": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 512},
    "llava": {"vision_feature_layer": -1, "vision_feature_select_strategy": "default"},
}  # fmt: skip


def _peak_memory_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def build_llava(sizes: dict, folder: Path, device: torch.device) -> tuple:
    """(model, processor) of the given sizes: random weights, a local word-level tokenizer."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig
    from transformers import LlavaForConditionalGeneration as Llava

    from vlreid.templates import load_template
    from vlreid.testing.llava import (
        IMAGE_TOKEN,
        TinyLlavaConfig,
        build_processor,
        build_tokenizer,
        tokenizer_corpus,
    )

    templates = [load_template("person")]
    tokenizer = build_tokenizer(tokenizer_corpus(templates, 50, seed=0))
    vision = CLIPVisionConfig(**sizes["vision"])
    text = {"vocab_size": len(tokenizer), **sizes["text"]}  # the 7B's own vocab size if given
    special = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.bos_token_id,
               "eos_token_id": tokenizer.eos_token_id}  # fmt: skip
    text = LlamaConfig(**text, **special)
    tokens = (vision.image_size // vision.patch_size) ** 2
    config = LlavaConfig(vision_config=vision, text_config=text, image_seq_length=tokens,
                         image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                         **sizes["llava"])  # fmt: skip
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):  # built in place: a 7B model never exists in float32 on the CPU
        model = Llava._from_config(config, dtype=dtype).eval()
    processor = build_processor(
        TinyLlavaConfig(image_size=vision.image_size, patch_size=vision.patch_size), tokenizer
    )
    processor.save_pretrained(folder)
    return model, processor


def caption_part(toy: bool, device: torch.device, scratch: Path, skip_4bit: bool) -> list[dict]:
    from vlreid.captioning.llava import LlavaCaptioner, LlavaSettings
    from vlreid.captioning.run import CaptionRunConfig, caption_manifest
    from vlreid.datasets import load_manifest
    from vlreid.synthetic import make_synthetic_dataset
    from vlreid.templates import load_template

    tokens = 8 if toy else 32
    batches = [1, 4, 8] if toy else [1, 8, 16, 32]
    make_synthetic_dataset(scratch / "images", ids=8 if toy else 40, cameras=4, min_cameras=4)
    manifest = load_manifest("synthetic", scratch / "images")
    root = manifest.root
    train = manifest.split_rows("train").sort_values("relpath")
    folder = scratch / "llava"
    model, processor = build_llava(TOY_LLAVA if toy else LLAVA_15_7B, folder, device)
    instruction = load_template("person").instruction
    rows = []
    for precision in ("bf16", "4-bit"):
        if precision == "4-bit":
            if device.type != "cuda" or skip_4bit:
                rows.append({"part": "caption", "precision": precision, "skipped": "needs CUDA"})
                continue
            try:
                import bitsandbytes  # noqa: F401
            except ImportError:
                rows.append({"part": "caption", "precision": precision,
                             "skipped": "bitsandbytes not installed"})  # fmt: skip
                continue
            model.save_pretrained(folder)  # reloaded, quantised, by the captioner itself
            del model
            torch.cuda.empty_cache()
        settings = LlavaSettings(
            model=str(folder), max_new_tokens=tokens, device=str(device),
            dtype="bfloat16" if device.type == "cuda" else "float32",
            load_in_4bit=precision == "4-bit",
        )  # fmt: skip
        loaded = (model, processor) if precision == "bf16" else None
        captioner = LlavaCaptioner(settings, instruction, loaded=loaded)
        captioner.network.generation_config.min_new_tokens = tokens  # fixed-length answers
        for batch in batches:
            images = train.head(max(2 * batch, 16))
            config = CaptionRunConfig(batch_size=batch, shard_size=256, progress=False)
            out = scratch / f"captions-{precision}-{batch}"
            caption_manifest(images.head(batch), root, out / "warm-up", config, captioner)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
                torch.cuda.reset_peak_memory_stats(device)
            seconds = caption_manifest(images, root, out / "timed", config, captioner).seconds
            rows.append({"part": "caption", "precision": precision, "batch": batch,
                         "images_per_second": len(images) / seconds,
                         "peak_mb": _peak_memory_mb(device)})  # fmt: skip
        del captioner
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def training_part(toy: bool, device: torch.device, scratch: Path) -> list[dict]:
    sys.path.insert(0, str(BENCHMARKS))
    from training import make_data
    from vlreid.config import load_config
    from vlreid.training.data import build_stage_loader, load_run_data, set_loader_epoch
    from vlreid.training.loop import train

    data, captions = make_data(scratch / "training", ids=36 if toy else 60)
    steps = 2 if toy else 20
    rows = []
    for method in METHODS:
        path = CONFIGS / (f"synthetic_{method}.toml" if toy else f"{method}_market1501.toml")
        overrides = [f"data.root={data}", f"data.captions={captions}", "data.dataset=synthetic",
                     "train.progress=false", "train.eval_every=0",
                     f"data.num_workers={0 if toy else 8}",
                     f"train.cpu={str(device.type != 'cuda').lower()}"]  # fmt: skip
        if not toy:
            overrides += ["model.pretrained=none", "train.mixed_precision=bf16"]
        stages = load_config(path, overrides).stage_names()
        for stage in stages:  # two epochs (the first warms up), a few steps each
            overrides += [f"stages.{stage}.epochs=2", f"stages.{stage}.steps_per_epoch={steps}"]
            overrides += [f"stages.{stage}.warmup_epochs=0"]
        config = load_config(path, overrides)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        train(config, scratch / f"run-{method}")
        peak = _peak_memory_mb(device)
        lines = (scratch / f"run-{method}" / "metrics.jsonl").read_text().splitlines()
        records = [json.loads(line) for line in lines]
        run_data = load_run_data(config.data)
        for stage in stages:
            loop = [record for record in records if record.get("stage") == stage][-1]
            loader = build_stage_loader(config, stage, run_data)
            set_loader_epoch(loader, 1)
            started, images = time.perf_counter(), 0
            for _, batch in zip(range(steps), loader, strict=False):
                images += len(batch["labels"])
            loader_rate = images / (time.perf_counter() - started)
            rows.append({"part": "train", "method": method, "stage": stage,
                         "images_per_second": loop["images_per_second"],
                         "loader_images_per_second": loader_rate, "peak_mb": peak})  # fmt: skip
    return rows


def evaluation_part(toy: bool, device: torch.device) -> list[dict]:
    sys.path.insert(0, str(BENCHMARKS))
    import evaluation
    from vlreid.evaluation.metrics import (
        GalleryDistances,
        evaluate_features,
        feature_chunks,
        resolve_memory_budget,
    )

    size = "toy" if toy else "msmt17"
    problem = evaluation.make_problem(size, evaluation.MSMT17_NOISE)
    query = torch.from_numpy(problem["query_features"]).to(device)
    gallery = torch.from_numpy(problem["gallery_features"]).to(device)
    labels = [problem[key] for key in ("q_pids", "g_pids", "q_camids", "g_camids")]

    def distances_alone() -> None:
        # the chunks of evaluate_features (on CUDA: sized to half the free memory)
        budget = resolve_memory_budget(None, device)
        rows, _ = feature_chunks(gallery.shape[0], budget, torch.device(device))
        buffer = torch.empty(rows, gallery.shape[0], device=device)
        distances = GalleryDistances(gallery)
        for start in range(0, query.shape[0], rows):
            chunk = query[start : start + rows]
            distances(chunk, out=buffer[: chunk.shape[0]])

    figures = []
    for function in (distances_alone, lambda: evaluate_features(query, gallery, *labels)):
        function()  # warm-up (CUDA kernels, allocator)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        result = function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        figures.append((time.perf_counter() - started, _peak_memory_mb(device), result))
    (gemm, gemm_peak, _), (ours, peak, result) = figures
    return [{"part": "evaluate", "size": size, "gemm_seconds": gemm, "seconds": ours,
             "ratio": ours / gemm, "peak_mb": peak, "gemm_peak_mb": gemm_peak,
             "mAP": result.mAP}]  # fmt: skip


def print_table(rows: list[dict], device: torch.device, seconds: float) -> None:
    def memory(row: dict) -> str:
        return f"{row['peak_mb']:.0f} MB" if row.get("peak_mb") is not None else "-"

    print(f"device {device}, {seconds:.0f} s in all")
    for row in rows:
        if "skipped" in row:
            print(f"caption {row['precision']:6} skipped: {row['skipped']}")
        elif row["part"] == "caption":
            first = next(other for other in rows if other.get("precision") == row["precision"])
            speed_up = row["images_per_second"] / first["images_per_second"]
            print(f"caption {row['precision']:6} batch {row['batch']:3} "
                  f"{row['images_per_second']:8.2f} images/s ({speed_up:4.1f}x batch 1) "
                  f"peak {memory(row)}")  # fmt: skip
        elif row["part"] == "train":
            print(f"train   {row['method']:10} {row['stage']:6} {row['images_per_second']:8.1f} "
                  f"images/s, loader alone {row['loader_images_per_second']:8.1f} images/s, "
                  f"peak {memory(row)}")  # fmt: skip
        else:
            print(f"evaluate {row['size']}: distances alone {row['gemm_seconds']:.2f} s, "
                  f"evaluate_features {row['seconds']:.2f} s = {row['ratio']:.2f}x, "
                  f"peak {memory(row)}, mAP {row['mAP']:.3f}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--toy", action="store_true", help="toy sizes (the default without CUDA)")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--skip-4bit", action="store_true", help="no 4-bit captioning")
    parser.add_argument("--parts", nargs="+", default=["caption", "train", "evaluate"])
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    toy = arguments.toy or device.type != "cuda"
    if toy:
        torch.set_num_threads(1)  # tiny tensors: steadier (and faster) on a shared machine
    started = time.perf_counter()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        parts = {
            "caption": lambda: caption_part(toy, device, scratch, arguments.skip_4bit),
            "train": lambda: training_part(toy, device, scratch),
            "evaluate": lambda: evaluation_part(toy, device),
        }
        for part in arguments.parts:
            part_started = time.perf_counter()
            rows += parts[part]()
            logging.getLogger("gpu").warning("%s: %.1f s", part, time.perf_counter() - part_started)
    seconds = time.perf_counter() - started
    print_table(rows, device, seconds)
    if arguments.json:
        summary = {"device": str(device), "toy": toy, "seconds": seconds, "rows": rows}
        arguments.json.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
