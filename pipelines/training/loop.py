"""The epoch loop every task's trainer shares: optimizer and schedule from the
config, resume from a saved state, one report per epoch with a checkpointable
state and the trial's cost (pipelines.training.cost), and a stop at a diverged
loss; plus the device helpers (autocast, the fast model) the trainers use."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, NamedTuple, cast

import torch

from pipelines.training.config import BaseConfig
from pipelines.training.cost import Cost
from pipelines.training.lr_schedules import LRSchedule, build_schedule
from pipelines.training.optim import build_optimizer, effective_lr

Metrics = dict[str, float]  # an epoch's metrics (epoch and diverged are an int and a bool)
# a checkpointable state: state dicts of tensors, counters and RNG states, as torch.save takes
State = dict[str, Any]
Report = Callable[[Metrics, State], None]


DIVERGENCE_CHECK_EVERY = 10  # steps between finiteness checks (each one syncs a GPU)


@dataclass(frozen=True)
class TrainResult:
    """How a training run ended: its epochs, best and last score, and the model."""

    epochs: int
    best_score: float  # of the task's score (val_acc, val_miou); 0 without validation
    last_score: float
    diverged: bool
    model: torch.nn.Module | None = field(default=None, repr=False, compare=False)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(cfg: BaseConfig, device: torch.device) -> torch.autocast:
    """bf16 autocast where `cfg.precision` asks for it (auto: on CUDA)."""
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def fast_model(model: torch.nn.Module, cfg: BaseConfig, device: torch.device
               ) -> torch.nn.Module:
    """What runs the steps: channels_last on CUDA, compiled if `cfg.compile`. The
    state (checkpoints) stays the plain module's."""
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    # torch.compile of a Module is an OptimizedModule, itself a Module; the stub says Callable
    return cast(torch.nn.Module, torch.compile(model)) if cfg.compile else model


class EpochStats(NamedTuple):
    """What one epoch's optimizer steps (`run_steps`) give back."""

    mean_loss: float  # per example
    examples: int
    seconds: float
    diverged: bool  # the loss became NaN or infinite
    lr: float  # the optimizer's learning rate at the last step (as scheduled)


# train_epoch(opt, schedule, generator): one pass over the training data
TrainEpoch = Callable[[torch.optim.Optimizer, LRSchedule, torch.Generator], EpochStats]
# loss_of(inputs, targets): a batch's mean loss, to backpropagate
LossOf = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _state(model: torch.nn.Module, opt: torch.optim.Optimizer, schedule: LRSchedule,
           epoch: int, best: float, generator: torch.Generator, train_s: float) -> State:
    return {
        "model": model.state_dict(), "optimizer": opt.state_dict(),
        "schedule": schedule.state_dict(), "epoch": epoch, "best_score": best,
        "rng": generator.get_state(), "torch_rng": torch.get_rng_state(), "train_s": train_s,
    }


def fit(cfg: BaseConfig, model: torch.nn.Module, train_size: int, device: torch.device, *,
        score: str, train_epoch: TrainEpoch, validate_epoch: Callable[[], Metrics],
        report: Report | None, resume_state: State | None, cost: Cost,
        val_images: int) -> TrainResult:
    """The epoch loop every task shares: optimizer and schedule from `cfg`, resume,
    one `train_epoch(opt, schedule, generator)` and `validate_epoch()` per epoch, a
    report with a checkpointable state, and a stop at a diverged loss. `score` is
    the validation metric whose best (highest) the state keeps. Every report holds
    the cost columns: `cost` (measured before training), the epoch's validation
    time per image (latency_ms, over `val_images`; NaN without any) and the training
    time so far (train_s, validation excluded; a resumed trial counts on)."""
    generator = torch.Generator().manual_seed(cfg.seed)
    opt = build_optimizer(model.parameters(), cfg)
    schedule = build_schedule(opt, cfg, math.ceil(train_size / cfg.batch_size))
    first_epoch, best, last, train_s = 1, 0.0, 0.0, 0.0
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        opt.load_state_dict(resume_state["optimizer"])
        schedule.load_state_dict(resume_state["schedule"])
        generator.set_state(resume_state["rng"])
        torch.set_rng_state(resume_state["torch_rng"])
        first_epoch = resume_state["epoch"] + 1
        older_best: float = resume_state.get("best_val_acc", 0.0)  # older checkpoints' name
        best = resume_state.get("best_score", older_best)
        train_s = resume_state.get("train_s", 0.0)  # older checkpoints: from this epoch on

    for epoch in range(first_epoch, cfg.epochs + 1):
        train_loss, seen, epoch_s, diverged, lr = train_epoch(opt, schedule, generator)
        train_s += epoch_s
        val_start = time.perf_counter()
        scores = validate_epoch()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        val_s = time.perf_counter() - val_start
        schedule.after_epoch(train_loss if math.isnan(scores["val_loss"]) else
                             scores["val_loss"])
        last = scores[score]
        best = max(best, last)  # max(0.0, nan) is 0.0: no validation, no best
        metrics = {"epoch": epoch, "train_loss": train_loss, **scores, "lr": lr,
                   "epoch_s": epoch_s, "images_per_s": seen / epoch_s, "diverged": diverged,
                   "effective_lr": effective_lr(cfg.lr, cfg.batch_size),
                   "params": cost.params, "peak_mem_mb": cost.peak_mem_mb,
                   "latency_ms": val_s / val_images * 1000 if val_images else math.nan,
                   "train_s": train_s}
        if report is not None:
            report(metrics, _state(model, opt, schedule, epoch, best, generator, train_s))
        if diverged:
            return TrainResult(epoch, best, last, True, model)
    return TrainResult(cfg.epochs, best, last, False, model)


def run_steps(model: torch.nn.Module, opt: torch.optim.Optimizer, schedule: LRSchedule,
              device: torch.device, loss_of: LossOf,
              batches: Iterator[tuple[torch.Tensor, torch.Tensor]]) -> EpochStats:
    """Optimizer steps over `batches`, `loss_of(x, y)` each, and their EpochStats.
    The loss is read back only every DIVERGENCE_CHECK_EVERY steps (each read
    syncs a GPU)."""
    model.train()
    start = time.perf_counter()
    loss_sum = torch.zeros((), device=device)
    seen, lr = 0, opt.param_groups[0]["lr"]
    for step, (x, y) in enumerate(batches):
        loss = loss_of(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        lr = opt.param_groups[0]["lr"]
        opt.step()
        schedule.after_batch()
        loss_sum += loss.detach() * len(y)
        seen += len(y)
        if step % DIVERGENCE_CHECK_EVERY == 0 and not torch.isfinite(loss_sum):
            break
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    mean_loss = loss_sum.item() / max(seen, 1)
    return EpochStats(mean_loss, seen, time.perf_counter() - start,
                      not math.isfinite(mean_loss), lr)
