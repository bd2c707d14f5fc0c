"""The stage trainer T(f, data, E) (book/notes/training.md#notes-training-stage): Nesterov SGD, lr 0.1 x batch/128, x0.1 at E/2 and 3E/4.

The schedule restarts every stage; hooks (start_epoch, optimizer/scheduler state, on_epoch_end) let a runner
checkpoint and resume.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from gearlib.augment.jsd import JSD_LAMBDA, task_loss
from gearlib.models.layout import use_channels_last

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
SCHEDULES = ("step", "cosine")
EpochHook = Callable[[int, nn.Module, torch.optim.Optimizer, Any, Dict[str, float]], None]


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite: the message names the stage, epoch and step."""

    user_facing = True  # the command line prints the message without a traceback


@dataclass
class StageConfig:
    """Hyper-parameters of one training stage (book/notes/training.md#notes-training-stage).

    Attributes:
        lr: initial learning rate at the reference batch size (0.1 at 128).
        reference_batch_size: batch size that `lr` refers to; lr scales by B / 128 when scale_lr_with_batch.
        momentum, nesterov, weight_decay: SGD settings (0.9, True, 5e-4).
        schedule: "step" (lr times lr_gamma after each of milestones_frac of the epochs; GEARnn's stage
            trainer) or "cosine" (cosine annealing to 0 over the stage; the GroupNL paper's CIFAR recipe).
        milestones_frac: fractions of the stage's epochs after which lr is multiplied by lr_gamma.
        lr_gamma: decay factor (0.1).
        amp: CUDA autocast (float16) with a GradScaler; ignored on the CPU.
        channels_last: NHWC memory format for the model and inputs (faster convs on CUDA and oneDNN CPUs).
        progress: tqdm bar per epoch.
        max_batches: cap on steps per epoch (smoke runs); None = the whole batch source.
    """

    lr: float = 0.1
    reference_batch_size: int = 128
    scale_lr_with_batch: bool = True
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "step"
    milestones_frac: Tuple[float, ...] = (0.5, 0.75)
    lr_gamma: float = 0.1
    amp: bool = False
    channels_last: bool = False
    progress: bool = True
    max_batches: Optional[int] = None

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.reference_batch_size < 1:
            raise ValueError(f"reference_batch_size must be >= 1, got {self.reference_batch_size}")
        if not 0 <= self.momentum < 1 or self.weight_decay < 0:
            raise ValueError(
                f"need 0 <= momentum < 1 and weight_decay >= 0, got {self.momentum}, {self.weight_decay}"
            )
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if any(not 0 <= f <= 1 for f in self.milestones_frac):
            raise ValueError(f"milestones_frac must lie in [0, 1], got {self.milestones_frac}")
        self.milestones_frac = tuple(self.milestones_frac)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class StageResult:
    """Outcome of train_stage: per-epoch metrics (loss, acc, seconds, lr, epoch), total seconds, and the
    optimizer and scheduler (for a final checkpoint)."""

    metrics: List[Dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    optimizer: Optional[torch.optim.Optimizer] = None
    scheduler: Any = None


def clean_cross_entropy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CE on the clean view: the first len(y) rows of logits (J views are concatenated, clean first)."""
    return F.cross_entropy(logits[: y.shape[0]], y)


def default_loss_fn(jsd_lambda: float = JSD_LAMBDA) -> LossFn:
    """The task loss of every phase: CE on clean batches, CE(clean) + jsd_lambda * JSD on J-view batches
    (gearlib.augment.jsd.task_loss; runs pass the profile's `jsd_lambda`)."""
    return functools.partial(task_loss, weight=float(jsd_lambda))


def infer_batch_size(batches: Iterable) -> Optional[int]:
    """Batch size B of a batch source: its `batch_size` attribute, or the labels of item 0 of a sequence."""
    size = getattr(batches, "batch_size", None)
    if size:
        return int(size)
    if isinstance(batches, Sequence) and len(batches) > 0:
        return int(batches[0][1].shape[0])
    return None


def stage_lr(config: StageConfig, batch_size: Optional[int] = None) -> float:
    """Initial lr of a stage: config.lr * B / reference batch (book/notes/training.md#notes-training-stage), or config.lr if B is unknown."""
    if batch_size is None or not config.scale_lr_with_batch:
        return config.lr
    return config.lr * batch_size / config.reference_batch_size


def make_optimizer(
    model: nn.Module, config: StageConfig, batch_size: Optional[int] = None
) -> torch.optim.SGD:
    """A fresh Nesterov SGD optimizer (momentum buffers empty) at the stage's initial lr."""
    return torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad],
        lr=stage_lr(config, batch_size),
        momentum=config.momentum,
        nesterov=config.nesterov and config.momentum > 0,
        weight_decay=config.weight_decay,
    )


def milestones(epochs: int, config: StageConfig) -> List[int]:
    """Epochs after which lr decays: floor(f * E) per fraction f, dropping 0 (e.g. E=40 -> [20, 30])."""
    return sorted(m for m in (math.floor(f * epochs) for f in config.milestones_frac) if m > 0)


def make_scheduler(optimizer: torch.optim.Optimizer, epochs: int, config: StageConfig):
    """Step decay by config.lr_gamma at milestones(epochs), or cosine annealing to 0 over `epochs` when
    config.schedule is "cosine"; call scheduler.step() once per epoch."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones(epochs, config), gamma=config.lr_gamma)


def _grad_scaler(enabled: bool):
    """GradScaler for CUDA that works on torch 2.1 (torch.cuda.amp) and newer (torch.amp) quietly."""
    scaler_cls = getattr(torch.amp, "GradScaler", None)
    if scaler_cls is not None:
        return scaler_cls("cuda", enabled=enabled)
    return torch.cuda.amp.GradScaler(enabled=enabled)


def _steps(batches: Iterable, config: StageConfig, desc: str) -> Iterable:
    total = len(batches) if hasattr(batches, "__len__") else None
    if config.max_batches is not None:
        total = min(total, config.max_batches) if total is not None else config.max_batches
    it = iter(batches)
    if config.progress:
        from tqdm.auto import tqdm

        it = tqdm(it, total=total, desc=desc, leave=False)
    for step, batch in enumerate(it):
        if config.max_batches is not None and step >= config.max_batches:
            break
        yield batch


def train_epoch(
    model: nn.Module,
    batches: Iterable,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    config: StageConfig,
    device: torch.device,
    scaler: Any = None,
    desc: str = "train",
) -> Dict[str, float]:
    """One pass over `batches`; returns mean loss and clean-view accuracy (no host sync per step)."""
    model.train()
    use_amp = config.amp and device.type == "cuda"
    total_loss = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    first_bad = torch.full((), -1, device=device, dtype=torch.long)  # first step with a non-finite loss
    seen = 0
    for step, (x, y) in enumerate(_steps(batches, config, desc)):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        x = x.contiguous(
            memory_format=torch.channels_last if config.channels_last else torch.contiguous_format
        )
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
            logits = model(x)
            loss = loss_fn(logits, y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        n = y.shape[0]
        total_loss += loss.detach().float() * n
        correct += (logits[:n].detach().argmax(1) == y).sum()
        bad = ~torch.isfinite(loss.detach()) & (first_bad < 0)  # on the device: no host sync per step
        first_bad = torch.where(bad, torch.full_like(first_bad, step), first_bad)
        seen += n
    if seen == 0:
        raise ValueError("the batch source yielded no batches")
    if int(first_bad) >= 0:
        raise TrainingDiverged(
            f"{desc}: the training loss became non-finite at step {int(first_bad) + 1} of this epoch; "
            f"the run stops here (its last finished epoch stays checkpointed). Lower the learning rate "
            f"(lr={config.lr:g}, e.g. --set lr={config.lr / 2:g}) or check the data and the loss."
        )
    return {"loss": float(total_loss) / seen, "acc": float(correct) / seen}


def train_stage(
    model: nn.Module,
    batches: Iterable,
    epochs: int,
    config: Optional[StageConfig] = None,
    *,
    loss_fn: Optional[LossFn] = None,
    device: Optional[Union[str, torch.device]] = None,
    batch_size: Optional[int] = None,
    start_epoch: int = 0,
    optimizer_state: Optional[Dict[str, Any]] = None,
    scheduler_state: Optional[Dict[str, Any]] = None,
    on_epoch_end: Optional[EpochHook] = None,
    progress: Optional[bool] = None,
    desc: str = "train",
    wrap: Optional[Callable[[nn.Module], nn.Module]] = None,
) -> StageResult:
    """T(f, data, E): train `model` in place for `epochs` epochs with a fresh optimizer and lr schedule.

    Args:
        model: the network f (moved to `device`; channels_last if configured).
        batches: batch source, re-iterated each epoch, yielding (x [J*B,3,H,W] float in [0,1], y [B]).
        epochs: E, the stage length in epochs (0 returns at once).
        config: StageConfig (default: the paper's values).
        loss_fn: L(logits, y); default `default_loss_fn()` (CE, plus 12 x JSD on multi-view batches).
        device: default: the model's device.
        batch_size: B for the lr scaling; default: batches.batch_size or the first batch of a list.
        start_epoch: resume at this epoch (0-based); the lr schedule is fast-forwarded if no state is given.
        optimizer_state, scheduler_state: state dicts to restore when resuming.
        on_epoch_end: called as on_epoch_end(epoch, model, optimizer, scheduler, metrics) after each epoch,
            e.g. to save a checkpoint; metrics = {"epoch", "loss", "acc", "seconds", "lr"}.
        progress: overrides config.progress (tqdm bar per epoch) when given.
        desc: label of the progress bar.
        wrap: applied to the placed model before the optimizer is made; the steps run through what it
            returns (gearlib.distributed.wrap: DistributedDataParallel). Pass `batch_size` as the
            global batch then, so the lr scales with it.

    Returns:
        StageResult with the per-epoch metrics of the epochs run here and their total wall time (seconds).
    """
    config = config if config is not None else StageConfig()
    if progress is not None:
        config = dataclasses.replace(config, progress=bool(progress))
    if epochs < 0 or not 0 <= start_epoch <= max(epochs, 0):
        raise ValueError(f"need epochs >= 0 and 0 <= start_epoch <= epochs, got {epochs}, {start_epoch}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    if config.channels_last and not use_channels_last(model, device, True):
        config = dataclasses.replace(config, channels_last=False)  # oneDNN issue 6035, see models.layout
        model.to(memory_format=torch.contiguous_format)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    loss_fn = loss_fn if loss_fn is not None else default_loss_fn()
    batch_size = batch_size if batch_size is not None else infer_batch_size(batches)
    stepped = wrap(model) if wrap is not None else model
    optimizer = make_optimizer(model, config, batch_size)
    scheduler = make_scheduler(optimizer, epochs, config)
    if optimizer_state is not None:
        optimizer.load_state_dict(optimizer_state)
    if scheduler_state is not None:
        scheduler.load_state_dict(scheduler_state)
    else:
        with warnings.catch_warnings():  # fast-forward the schedule without optimizer steps
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(start_epoch):
                scheduler.step()
    scaler = _grad_scaler(True) if config.amp and device.type == "cuda" else None
    result = StageResult(optimizer=optimizer, scheduler=scheduler)
    for epoch in range(start_epoch, epochs):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        metrics = train_epoch(
            stepped,
            batches,
            optimizer,
            loss_fn,
            config,
            device,
            scaler,
            desc=f"{desc} epoch {epoch + 1}/{epochs}",
        )
        scheduler.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        metrics.update(epoch=epoch, seconds=time.perf_counter() - start, lr=lr)
        result.metrics.append(metrics)
        result.seconds += metrics["seconds"]
        if on_epoch_end is not None:
            on_epoch_end(epoch, model, optimizer, scheduler, metrics)
    return result
