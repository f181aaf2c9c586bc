"""The training loop: one explicit function, :func:`train`, on ``accelerate``.

``accelerate`` places the model, wraps it for DDP across processes (``accelerate launch`` or
``torchrun``; one process is plain CPU/GPU training), runs the forward pass under bf16/fp16
autocast when asked, and scales fp16 losses. Everything else is written out in :func:`train`:

- stages run in the method's order; each gets ``prepare_stage``, its own optimizer over
  ``param_groups`` and its own epoch-wise learning-rate schedule (:mod:`vlreid.training.schedule`);
- gradient accumulation is done by hand (``no_sync`` on the batches that do not step), so that an
  epoch always ends with an optimizer step and a checkpoint never holds half-accumulated
  gradients;
- after every epoch: the epoch's mean loss terms, learning rates and images/s go to
  ``metrics.jsonl``; the last stage evaluates query/gallery every ``train.eval_every`` epochs and
  after its last epoch (each rank extracts a share of the images, rank 0 gathers and scores);
  ``curves.png`` is redrawn after evaluations and at the end of each stage; ``model.safetensors``
  and ``state.pt`` are written (rank 0), the latter with every rank's random state.

A run folder that holds ``state.pt`` is resumed from it: the method's weights, the optimizer, the
position (stage, epoch, step) and the random states are restored, so that on CPU the resumed run
ends with the same weights, bit for bit, as a run that was never stopped.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlreid.config import RunConfig, dump_config
from vlreid.model import WEIGHTS_FILE, save_inference_weights
from vlreid.training.checkpoint import (
    STATE_FILE,
    capture_rng_state,
    load_training_state,
    restore_rng_state,
    save_training_state,
)
from vlreid.training.data import (
    build_eval_shard,
    build_feature_loader,
    build_stage_loader,
    load_run_data,
    set_loader_epoch,
)
from vlreid.training.distributed import evaluate, mean_across_processes
from vlreid.training.provenance import record_provenance
from vlreid.training.report import (
    CURVES_FILE,
    METRICS_FILE,
    append_metrics,
    plot_curves,
    read_metrics,
    truncate_metrics,
)
from vlreid.training.schedule import build_optimizer, set_learning_rates
from vlreid.training.setup import (
    backbone_config,
    build_run_method,
    check_captions_given,
    check_resumable,
    group_learning_rates,
    move_batch,
    resolve_mixed_precision,
)

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.toml"


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` did.

    Attributes:
        run_dir: The run folder.
        epochs_run: Epochs trained by this call (not counting resumed ones).
        finished: Whether the last epoch of the last stage is done.
        scores: The last evaluation of this call (mAP, rank1, ...), or None.
    """

    run_dir: Path
    epochs_run: int
    finished: bool
    scores: dict[str, float] | None


def train(config: RunConfig, run_dir: str | Path, max_epochs: int | None = None) -> TrainResult:
    """Train (or resume) the run described by ``config`` in ``run_dir``.

    Args:
        config: The resolved run config.
        run_dir: Run folder; resumed if it holds ``state.pt``.
        max_epochs: Stop after this many epochs in this call (e.g. a cluster job's time slice);
            the next call resumes. None trains to the end.

    Raises:
        ReIDError: Bad data, or a ``state.pt`` that belongs to a different run.
    """
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, gather_object, set_seed
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    run_dir = Path(run_dir)
    check_captions_given(config)
    ddp_options = DistributedDataParallelKwargs(
        find_unused_parameters=True,  # a stage may leave some trainable module unused
        broadcast_buffers=False,  # caches are buffers; BN statistics are unused at inference
    )
    accelerator = Accelerator(
        cpu=config.train.cpu,
        mixed_precision=resolve_mixed_precision(config.train.mixed_precision, config.train.cpu),
        kwargs_handlers=[ddp_options],
    )
    is_main, rank = accelerator.is_main_process, accelerator.process_index
    state = None
    if (run_dir / STATE_FILE).is_file():
        state = load_training_state(run_dir / STATE_FILE)
        check_resumable(state, config, accelerator.num_processes, run_dir)
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG_FILE).write_text(dump_config(config), encoding="utf-8")

    set_seed(config.train.seed)  # same initialisation on every rank
    data = load_run_data(config.data)
    provenance = record_provenance(run_dir, config, data, accelerator)  # rank 0 writes the file
    method = build_run_method(config, backbone_config(config, data)).to(accelerator.device)
    eval_loader, eval_indices = build_eval_shard(config, data, accelerator.num_processes, rank)
    feature_loader = build_feature_loader(config, data)
    evaluate_model = functools.partial(
        evaluate, accelerator, method.model, eval_loader, eval_indices, data, config.train.rerank
    )
    stages = config.stage_names()
    first_epochs = list(itertools.accumulate((config.stages[s].epochs for s in stages), initial=0))
    resume_stage, resume_epoch, step = 0, 0, 0
    if state is not None:
        method.load_state_dict(state.pop("method"))  # pop: free the copy of the weights
        resume_stage, resume_epoch, step = state["stage_index"], state["stage_epoch"], state["step"]
        if resume_epoch == config.stages[stages[resume_stage]].epochs:  # stage done: next one
            resume_stage, resume_epoch = resume_stage + 1, 0
        logger.info("resuming %s after epoch %d (%s)", run_dir, state["epoch"], state["stage"])
    if is_main:
        truncate_metrics(run_dir / METRICS_FILE, state["epoch"] if state else -1)
    set_seed(config.train.seed, device_specific=True)  # per-rank streams for training draws
    scores = None
    if state is None and config.train.eval_at_start:
        scores = evaluate_model()
        if is_main:
            record = {"epoch": 0, "stage": stages[0], "stage_epoch": 0, "step": 0, **scores}
            append_metrics(run_dir / METRICS_FILE, record)

    accumulation = config.train.gradient_accumulation_steps
    show = is_main and config.train.progress
    columns = ("{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    epochs_run = 0
    with Progress(*columns, disable=not show, transient=True) as progress:
        for stage_index in range(resume_stage, len(stages)):
            stage, stage_config = stages[stage_index], config.stages[stages[stage_index]]
            is_last_stage = stage_index == len(stages) - 1
            first_epoch = resume_epoch if stage_index == resume_stage else 0
            if state is not None and stage_index == resume_stage and first_epoch == 0:
                restore_rng_state(state["rng"][rank])  # resumed at a stage boundary
            loader = build_stage_loader(config, stage_config, data, accelerator.num_processes, rank)
            method.prepare_stage(stage, feature_loader)
            optimizer = build_optimizer(stage_config, method.param_groups(stage))
            wrapped, optimizer = accelerator.prepare(method, optimizer)
            if state is not None and stage_index == resume_stage and first_epoch > 0:
                optimizer.load_state_dict(state.pop("optimizer"))
                restore_rng_state(state["rng"][rank])  # after prepare_stage, as in the first run
            steps_per_epoch = min(len(loader), stage_config.steps_per_epoch or len(loader))
            for stage_epoch in range(first_epoch + 1, stage_config.epochs + 1):
                epoch = first_epochs[stage_index] + stage_epoch
                learning_rates = set_learning_rates(optimizer, stage_config, stage_epoch)
                set_loader_epoch(loader, epoch)
                method.train()
                sums: dict[str, float] = {}
                images, started = 0, time.perf_counter()
                description = f"{stage} {stage_epoch}/{stage_config.epochs}"
                task = progress.add_task(description, total=steps_per_epoch)
                for index, batch in enumerate(itertools.islice(loader, steps_per_epoch)):
                    batch = move_batch(batch, accelerator.device)
                    steps_now = (index + 1) % accumulation == 0 or index + 1 == steps_per_epoch
                    sync = contextlib.nullcontext() if steps_now else accelerator.no_sync(wrapped)
                    with sync:
                        output = wrapped(batch, stage)
                        accelerator.backward(output.loss / accumulation)
                    if steps_now:
                        optimizer.step()
                        optimizer.zero_grad(set_to_none=True)
                        step += 1
                    for name, value in output.terms.items():
                        sums[name] = sums.get(name, 0.0) + value
                    images += len(batch["labels"])
                    mean_loss = sums["loss"] / (index + 1)
                    progress.update(task, advance=1, description=f"{description} {mean_loss:.3f}")
                progress.remove_task(task)
                seconds = time.perf_counter() - started
                record: dict[str, Any] = {
                    "epoch": epoch,
                    "stage": stage,
                    "stage_epoch": stage_epoch,
                    "step": step,
                    "lr": group_learning_rates(optimizer, learning_rates),
                    **mean_across_processes(accelerator, sums, steps_per_epoch),
                    "images_per_second": images * accelerator.num_processes / seconds,
                    "seconds": seconds,
                }
                is_last = is_last_stage and stage_epoch == stage_config.epochs
                every = config.train.eval_every
                if is_last or (is_last_stage and every and stage_epoch % every == 0):
                    scores = evaluate_model()
                    record.update(scores or {})
                random_states = gather_object([capture_rng_state()])
                if is_main:
                    append_metrics(run_dir / METRICS_FILE, record)
                    if "mAP" in record or stage_epoch == stage_config.epochs:
                        plot_curves(read_metrics(run_dir / METRICS_FILE), run_dir / CURVES_FILE)
                    position = {"epoch": epoch, "stage": stage, "stage_index": stage_index}
                    extra = {f"reid.{key}": str(value) for key, value in position.items()}
                    extra.update(provenance)
                    save_inference_weights(
                        run_dir / WEIGHTS_FILE,
                        method.model,
                        config.model.preprocessing(),
                        config.to_json(),
                        extra,
                    )
                    checkpoint = {
                        **position,
                        "stage_epoch": stage_epoch,
                        "step": step,
                        "sampler_epoch": epoch,
                        "config": config.to_dict(),
                        "world_size": accelerator.num_processes,
                        "method": accelerator.unwrap_model(wrapped).state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "schedule": {"name": stage_config.schedule, "epoch": stage_epoch},
                        "rng": random_states,
                    }
                    save_training_state(run_dir / STATE_FILE, checkpoint)
                accelerator.wait_for_everyone()
                epochs_run += 1
                if max_epochs is not None and epochs_run >= max_epochs and not is_last:
                    return TrainResult(run_dir, epochs_run, False, scores)
            accelerator.free_memory()
    return TrainResult(run_dir, epochs_run, True, scores)
