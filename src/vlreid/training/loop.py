"""The training loop: one explicit function, :func:`train`, on ``accelerate``.

``accelerate`` places the model and wraps it for DDP (``accelerate launch`` or ``torchrun``; one
process is plain CPU/GPU training). Everything else is written out in :func:`train`:

- stages run in the method's order (``method.stages``); each gets ``stage.prepare``, its own
  optimizer over ``stage.param_groups()``, epoch-wise learning rates
  (:mod:`vlreid.training.schedule`) and :class:`MixedPrecision` (autocast, fp16 loss scaling);
- :func:`train_epoch` accumulates gradients by hand (``no_sync`` on the batches that do not
  step; an epoch always ends with a step) and sums the loss terms on the device, read once per
  epoch, so that no step waits for the device to report them;
- after every epoch: an :class:`~vlreid.training.report.EpochRecord` (mean loss terms, rates,
  images/s; scores every ``train.eval_every`` epochs of the last stage and after its end) goes
  to ``metrics.jsonl``; :func:`save_checkpoint` writes ``model.safetensors`` and ``state.pt``.

A run folder holding ``state.pt`` resumes from it (weights, optimizer, fp16 loss scale, position,
random states): on CPU it ends with the same weights, bit for bit, as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from vlreid.config import RunConfig, dump_config
from vlreid.training.checkpoint import (
    Position,
    capture_rng_state,
    restore_rng_state,
    save_checkpoint,
)
from vlreid.training.data import (
    build_feature_loader,
    build_stage_loader,
    check_stage_batches,
    load_run_data,
    set_loader_epoch,
)
from vlreid.training.distributed import build_evaluator, mean_across_processes
from vlreid.training.precision import MixedPrecision
from vlreid.training.provenance import record_provenance
from vlreid.training.report import (
    METRICS_FILE,
    EpochRecord,
    append_metrics,
    truncate_metrics,
    write_epoch,
)
from vlreid.training.schedule import build_optimizer, set_learning_rates
from vlreid.training.setup import (
    build_accelerator,
    build_run_method,
    check_captions_given,
    group_learning_rates,
    move_batch,
    progress_bar,
    read_resume_state,
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
    from accelerate.utils import gather_object, set_seed

    run_dir = Path(run_dir)
    check_captions_given(config)
    accelerator = build_accelerator(config.train)
    is_main, rank = accelerator.is_main_process, accelerator.process_index
    world_size = accelerator.num_processes
    state = read_resume_state(run_dir, config, world_size)
    if is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / CONFIG_FILE).write_text(dump_config(config), encoding="utf-8")

    set_seed(config.train.seed)  # same initialisation on every rank
    data = load_run_data(config.data)
    check_stage_batches(config, data, accelerator.num_processes)  # before any evaluation
    provenance = record_provenance(run_dir, config, data, accelerator)  # rank 0 writes the file
    method = build_run_method(config, data).to(accelerator.device)
    evaluate_model = build_evaluator(accelerator, config, data, method.model)
    feature_loader = build_feature_loader(config, data)
    stage_epochs = [config.stages[stage.name].epochs for stage in method.stages]
    position = Position()
    if state is not None:
        method.load_state_dict(state.pop("method"))  # pop: free the copy of the weights
        position = Position.after(state, stage_epochs)
        logger.info("resuming %s after epoch %d (%s)", run_dir, state["epoch"], state["stage"])
    if is_main:
        truncate_metrics(run_dir / METRICS_FILE, state["epoch"] if state else -1)
    set_seed(config.train.seed, device_specific=True)  # per-rank streams for training draws
    scores = None
    if state is None and config.train.eval_at_start:
        scores = evaluate_model()
        if is_main:
            start = {"epoch": 0, "stage": method.stages[0].name, "stage_epoch": 0, "step": 0}
            append_metrics(run_dir / METRICS_FILE, {**start, **scores})

    first_epochs = list(itertools.accumulate(stage_epochs, initial=0))
    accumulation, step, epochs_run = config.train.gradient_accumulation_steps, position.step, 0
    with progress_bar(is_main and config.train.progress) as progress:
        for stage_index, stage in list(enumerate(method.stages))[position.stage_index :]:
            stage_config = config.stages[stage.name]
            is_last_stage = stage_index == len(method.stages) - 1
            resuming = state is not None and stage_index == position.stage_index
            first_epoch = position.stage_epoch if resuming else 0
            if resuming and first_epoch == 0:
                restore_rng_state(state["rng"][rank])  # the checkpoint ended the previous stage
            loader = build_stage_loader(config, stage.name, data, world_size, rank)
            stage.prepare(feature_loader)
            optimizer = build_optimizer(stage_config, stage.param_groups())
            wrapped, optimizer = accelerator.prepare(stage, optimizer)
            mixed = MixedPrecision(config.train, accelerator.device)  # a scaler per stage
            if resuming and first_epoch > 0:
                optimizer.load_state_dict(state.pop("optimizer"))
                mixed.load_state_dict(state.get("scaler", {}))
                restore_rng_state(state["rng"][rank])  # after prepare, as in the first run
            for stage_epoch in range(first_epoch + 1, stage_config.epochs + 1):
                epoch = first_epochs[stage_index] + stage_epoch
                rates = set_learning_rates(optimizer, stage_config, stage_epoch)
                set_loader_epoch(loader, epoch)  # P x K epochs differ in length: len() after
                steps_per_epoch = min(len(loader), stage_config.steps_per_epoch or len(loader))
                method.train()
                description = f"{stage.name} {stage_epoch}/{stage_config.epochs}"
                task = progress.add_task(description, total=steps_per_epoch)
                advance = functools.partial(progress.advance, task)
                sums = train_epoch(accelerator, wrapped, optimizer, mixed, loader,
                                   steps_per_epoch, accumulation, advance)  # fmt: skip
                progress.remove_task(task)
                step += sums.steps
                record = EpochRecord(
                    epoch, stage.name, stage_epoch, step, group_learning_rates(optimizer, rates),
                    mean_across_processes(accelerator, sums.names, sums.sums, sums.batches),
                    sums.images * world_size / sums.seconds, sums.seconds,
                )  # fmt: skip
                is_last = is_last_stage and stage_epoch == stage_config.epochs
                every = config.train.eval_every
                if is_last or (is_last_stage and every and stage_epoch % every == 0):
                    scores = evaluate_model()
                    record = replace(record, scores=scores)
                random_states = gather_object([capture_rng_state()])
                if is_main:
                    write_epoch(run_dir, record, stage_done=stage_epoch == stage_config.epochs)
                    save_checkpoint(run_dir, config, method, optimizer, record, stage_index,
                                    random_states, provenance, mixed.state_dict())  # fmt: skip
                accelerator.wait_for_everyone()
                epochs_run += 1
                if max_epochs is not None and epochs_run >= max_epochs and not is_last:
                    return TrainResult(run_dir, epochs_run, False, scores)
            accelerator.free_memory()
    return TrainResult(run_dir, epochs_run, True, scores)


@dataclass(frozen=True)
class EpochSums:
    """What :func:`train_epoch` did: loss terms summed on the device, and counts.

    Attributes:
        names: Names of the loss terms (``MethodOutput.term_names``).
        sums: ``(T,)`` float64 sums of the terms over the batches, on the device.
        batches: Batches trained.
        images: Images in them.
        steps: Optimizer steps taken.
        seconds: Wall time.
    """

    names: tuple[str, ...]
    sums: torch.Tensor
    batches: int
    images: int
    steps: int
    seconds: float


def train_epoch(
    accelerator: Any,
    wrapped: Any,
    optimizer: torch.optim.Optimizer,
    mixed: MixedPrecision,
    loader: Iterable[dict[str, Any]],
    batches: int,
    accumulation: int,
    advance: Callable[[], Any],
) -> EpochSums:
    """Train the stage ``wrapped`` (prepared by ``accelerator``) on ``batches`` of ``loader``.

    Forward passes run under ``mixed``'s autocast, which also scales losses and steps (fp16).
    Gradients of ``accumulation`` batches are summed before each optimizer step, and the last
    batch always steps. The loss terms are summed on the device and never read here; ``advance``
    is called after each batch (the progress bar).
    """
    names: tuple[str, ...] = ()
    sums = torch.zeros(0, dtype=torch.float64, device=accelerator.device)
    done = images = steps = 0
    started = time.perf_counter()
    for batch in itertools.islice(loader, batches):
        batch = move_batch(batch, accelerator.device)
        done += 1
        steps_now = done % accumulation == 0 or done == batches
        with contextlib.nullcontext() if steps_now else accelerator.no_sync(wrapped):
            with mixed.autocast():
                output = wrapped(batch)
            accelerator.backward(mixed.scale(output.loss / accumulation))
        if steps_now:
            mixed.step(optimizer)
            optimizer.zero_grad(set_to_none=True)
            steps += 1
        values = output.term_values.to(torch.float64)  # summed where it is: no device sync
        names, sums = output.term_names, (values if done == 1 else sums + values)
        images += len(batch["labels"])
        advance()
    return EpochSums(names, sums, done, images, steps, time.perf_counter() - started)
