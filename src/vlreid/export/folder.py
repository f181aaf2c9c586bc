"""``reid export --format folder``: a model folder to share (``load_model(DIR)`` or a Hub repo).

The folder holds ``model.safetensors`` (a byte copy: weights and metadata unchanged),
``config.json`` (:func:`vlreid.model.folder.folder_config`) and ``README.md``, a model card with
the method, backbone, datasets, preprocessing, the run's final evaluation (the last record of
``metrics.jsonl`` with an ``mAP``, when the checkpoint sits in its run folder), the command that
trained it (from ``provenance.json``), the provenance fields and the config. Upload the folder as
it is (``huggingface-cli upload user/repo DIR``) and ``load_model("user/repo")`` loads it.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from vlreid.model import load_model
from vlreid.model.folder import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, folder_config, resolve_weights

logger = logging.getLogger(__name__)

METRICS_NAME = "metrics.jsonl"
PROVENANCE_NAME = "provenance.json"
RUN_CONFIG_NAME = "config.toml"
FIGURES: tuple[tuple[str, str], ...] = (
    ("mAP", "mAP"),
    ("rank1", "R1"),
    ("rank5", "R5"),
    ("rank10", "R10"),
    ("mINP", "mINP"),
)


def final_metrics(run_dir: Path) -> dict[str, Any] | None:
    """The last ``metrics.jsonl`` record of ``run_dir`` that holds an evaluation, or None."""
    path = run_dir / METRICS_NAME
    if not path.is_file():
        return None
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    evaluated = [record for record in records if "mAP" in record]
    return evaluated[-1] if evaluated else None


def model_card(config: dict[str, Any], run_dir: Path, repo_hint: str) -> str:
    """The README.md of a model folder (Hugging Face model card with YAML front matter)."""
    backbone, preprocessing = config["backbone"], config["preprocessing"]
    architecture = backbone["clip_model"] if not backbone.get("clip_config") else "custom CLIP"
    datasets = config["datasets"]
    lines = [
        "---",
        "library_name: vlreid",
        "tags: [person-re-identification, clip, image-feature-extraction]",
        f"datasets: [{', '.join(datasets)}]",
        "---",
        "",
        f"# vlreid {config['method'] or 'ReID'} model",
        "",
        "A CLIP image encoder adapted to re-identification, trained with "
        f"[vlreid](https://pypi.org/project/vlreid/) {config['vlreid_version']}: the image "
        "encoder alone (no text tower, no classifier). Captions, if the method used any, were "
        "training-only.",
        "",
        "## Model",
        "",
        f"- method: `{config['method']}`",
        f"- backbone: {architecture}, input {backbone['image_size'][0]}x"
        f"{backbone['image_size'][1]}, patch stride {backbone.get('stride') or 'native'}, "
        f"SIE cameras {backbone.get('sie_cameras', 0)}",
        f"- datasets: {', '.join(datasets) or 'unknown'}",
        f"- feature: {config['feature_dim']}-d, L2-normalised (compare with cosine similarity)",
        f"- preprocessing: RGB, resize to {preprocessing['size'][0]}x{preprocessing['size'][1]} "
        f"({preprocessing['interpolation']}), /255, mean {preprocessing['mean']}, "
        f"std {preprocessing['std']}",
        "",
        "## Usage",
        "",
        "```python",
        "import vlreid",
        f'model = vlreid.load_model("{repo_hint}")  # a folder or a Hub repo',
        "features = model(pil_images)  # (N, D), L2-normalised",
        "```",
        "",
    ]
    metrics = final_metrics(run_dir)
    lines += ["## Results", ""]
    if metrics is None:
        lines += ["No evaluation was found beside the checkpoint (metrics.jsonl).", ""]
    else:
        where = f"epoch {metrics.get('epoch')} ({metrics.get('stage')} stage)"
        dataset = ", ".join(datasets)
        lines += [
            f"Final evaluation of the run on {dataset} query/gallery, {where}:",
            "",
            "| " + " | ".join(label for _, label in FIGURES) + " |",
            "|" + "---|" * len(FIGURES),
            "| " + " | ".join(f"{100 * metrics[key]:.2f}" for key, _ in FIGURES) + " |",
            "",
        ]
    command = _training_command(run_dir)
    lines += ["## Training command", "", "```bash", command, "```", ""]
    if config["provenance"]:
        lines += ["## Provenance", ""]
        lines += [f"- {key}: `{value}`" for key, value in config["provenance"].items()]
        lines += [""]
    config_file = run_dir / RUN_CONFIG_NAME
    if config_file.is_file():
        lines += ["## Config", "", "```toml", config_file.read_text(encoding="utf-8").strip()]
    else:
        lines += ["## Config", "", "```json", json.dumps(config["run_config"], indent=2)]
    lines += ["```", ""]
    return "\n".join(lines)


def _training_command(run_dir: Path) -> str:
    path = run_dir / PROVENANCE_NAME
    if path.is_file():
        command = json.loads(path.read_text(encoding="utf-8")).get("command")
        if command:
            return str(command)
    return f"reid train {run_dir / RUN_CONFIG_NAME} --run-dir {run_dir}  # (reconstructed)"


def export_folder(checkpoint: str | Path, out: str | Path) -> Path:
    """Write the model folder of ``checkpoint`` to ``out`` (created; existing files replaced).

    Returns:
        ``out``.

    Raises:
        DataFileError: The checkpoint cannot be loaded.
    """
    weights = resolve_weights(checkpoint)
    model = load_model(weights)  # refuses a damaged checkpoint before anything is written
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if weights.resolve() != (out / WEIGHTS_NAME).resolve():
        temporary = out / f".{WEIGHTS_NAME}.tmp"
        shutil.copyfile(weights, temporary)
        temporary.replace(out / WEIGHTS_NAME)
    config = folder_config(model.metadata, model.feature_dim)
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    card = model_card(config, weights.parent, str(out))
    (out / CARD_NAME).write_text(card, encoding="utf-8")
    logger.info("wrote the model folder %s", out)
    return out
