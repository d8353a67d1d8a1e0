"""The epoch loop every task's trainer shares: optimizer and schedule from the
config, resume from a saved state, one report per epoch with a checkpointable
state, the trial's cost (pipelines.training.cost) and its training loss per step
window, a stop at a diverged loss, and per-trial early stopping (`patience`);
plus the device helpers (autocast, the fast model) the trainers use."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, NamedTuple, cast

import numpy as np
import torch

from pipelines.records.tables import NO_IMPROVEMENT_KEY, STEPS_KEY
from pipelines.training.batch_norm import set_bn_momentum
from pipelines.training.config import BaseConfig
from pipelines.training.cost import Cost
from pipelines.training.lookahead import Lookahead
from pipelines.training.lr_schedules import LRSchedule, build_schedule
from pipelines.training.optim import build_optimizer, effective_lr

# an epoch's metrics: numbers (epoch and diverged are an int and a bool), and its step
# windows under STEPS_KEY (a list)
Metrics = dict[str, Any]
# a checkpointable state: state dicts of tensors, counters and RNG states, as torch.save takes
State = dict[str, Any]
Report = Callable[[Metrics, State], None]


DIVERGENCE_CHECK_EVERY = 10  # steps between finiteness checks (each one syncs a GPU)
LOSS_WINDOWS = 10  # step windows per epoch whose mean training loss steps.parquet keeps
# (step at the window's end, within the epoch from 1; mean loss per example; lr at its last step)
Window = tuple[int, float, float]


@dataclass(frozen=True)
class TrainResult:
    """How a training run ended: its epochs, best and last score, and the model."""

    epochs: int
    best_score: float  # of the task's score (val_acc, val_miou); 0 without validation
    last_score: float
    diverged: bool
    model: torch.nn.Module | None = field(default=None, repr=False, compare=False)
    # stopped by `patience`: `epochs` epochs ran, the last `patience` without an improvement
    no_improvement: bool = False
    # the epoch `patience` counts from: the last to improve by min_delta (0: none finite);
    # not trials.parquet's best_epoch, the epoch of the best value itself
    patience_epoch: int = 0


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(cfg: BaseConfig, device: torch.device) -> torch.autocast:
    """bf16 autocast where `cfg.precision` asks for it (auto: on CUDA)."""
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def fast_model(model: torch.nn.Module, cfg: BaseConfig, device: torch.device
               ) -> torch.nn.Module:
    """What runs the steps: in channels_last memory (convolutions run 1.3-1.7x faster
    so on a CPU too: bench/throughput.py), compiled if `cfg.compile`. The state
    (checkpoints) stays the plain module's."""
    model.to(memory_format=torch.channels_last)  # 4-d weights only; the rest stays
    # torch.compile of a Module is an OptimizedModule, itself a Module; the stub says Callable
    return cast(torch.nn.Module, torch.compile(model)) if cfg.compile else model


class EpochStats(NamedTuple):
    """What one epoch's optimizer steps (`run_steps`) give back."""

    mean_loss: float  # per example
    examples: int
    seconds: float
    diverged: bool  # the loss became NaN or infinite
    lr: float  # the optimizer's learning rate at the last step (as scheduled)
    windows: tuple[Window, ...] = ()  # the epoch's step windows (LOSS_WINDOWS of them)


# train_epoch(opt, schedule, generator, epoch): one pass over the training data (epoch from 1)
TrainEpoch = Callable[[torch.optim.Optimizer, LRSchedule, torch.Generator, int], EpochStats]
# loss_of(inputs, targets): a batch's mean loss, to backpropagate
LossOf = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Monitor:
    """Per-trial early stopping on one metric: how many epochs since the monitored
    value last improved by at least `min_delta`, and the epoch of its best."""

    def __init__(self, metric: str, mode: str, min_delta: float) -> None:
        self.metric, self.mode, self.min_delta = metric, mode, min_delta
        self.best = -math.inf if mode == "max" else math.inf
        self.best_epoch, self.since = 0, 0

    def update(self, epoch: int, metrics: Metrics) -> None:
        value = metrics.get(self.metric, math.nan)
        gain = value - self.best if self.mode == "max" else self.best - value
        if math.isfinite(value) and gain > 0 and gain >= self.min_delta:  # the first: inf
            self.best, self.best_epoch, self.since = value, epoch, 0
        else:
            self.since += 1

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "since": self.since}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.since = state["best"], state["best_epoch"], state["since"]


def _state(model: torch.nn.Module, opt: torch.optim.Optimizer, schedule: LRSchedule,
           epoch: int, best: float, generator: torch.Generator, train_s: float,
           monitor: Monitor, lookahead: Lookahead | None) -> State:
    return {
        "model": model.state_dict(), "optimizer": opt.state_dict(),
        "schedule": schedule.state_dict(), "epoch": epoch, "best_score": best,
        "rng": generator.get_state(), "torch_rng": torch.get_rng_state(), "train_s": train_s,
        "monitor": monitor.state_dict(),
        **({"lookahead": lookahead.state_dict()} if lookahead is not None else {}),
    }


def fit(cfg: BaseConfig, model: torch.nn.Module, train_size: int, device: torch.device, *,
        score: str, train_epoch: TrainEpoch, validate_epoch: Callable[[], Metrics],
        report: Report | None, resume_state: State | None, cost: Cost,
        val_images: int, monitor: tuple[str, str] | None = None) -> TrainResult:
    """The epoch loop every task shares: optimizer and schedule from `cfg`, resume,
    one `train_epoch(opt, schedule, generator, epoch)` and `validate_epoch()` per epoch, a
    report with a checkpointable state, and a stop at a diverged loss. `score` is
    the validation metric whose best (highest) the state keeps. Every report holds
    the cost columns: `cost` (measured before training), the epoch's validation
    time per image (latency_ms, over `val_images`; NaN without any) and the training
    time so far (train_s, validation excluded; a resumed trial counts on), and the
    epoch's step windows (STEPS_KEY: [global step, mean training loss, lr] each).

    `monitor` ((metric, mode): the sweep's metric; default (score, "max")) is what
    `cfg.patience` watches: after that many epochs without an improvement of at
    least `cfg.min_delta`, training stops, the last report saying NO_IMPROVEMENT_KEY;
    without validation images (`val_images` 0) patience is off."""
    generator = torch.Generator().manual_seed(cfg.seed)
    set_bn_momentum(model, cfg.bn_momentum)
    opt = build_optimizer(model, cfg)
    steps_per_epoch = math.ceil(train_size / cfg.batch_size)
    schedule = build_schedule(opt, cfg, steps_per_epoch)
    watch = Monitor(*(monitor or (score, "max")), cfg.min_delta)
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
        if "monitor" in resume_state:  # older checkpoints: patience counts from here
            watch.load_state_dict(resume_state["monitor"])
    # after a resume's load: without a saved state, the slow weights start from the loaded
    lookahead = Lookahead(opt, k=cfg.lookahead_k, alpha=cfg.lookahead_alpha,
                          start=round(cfg.lookahead_start * steps_per_epoch),
                          ramp=cfg.lookahead_ramp, total=cfg.epochs * steps_per_epoch,
                          extra=[b for b in model.buffers() if b.is_floating_point()]) \
        if cfg.lookahead_k else None
    if lookahead is not None and resume_state is not None and "lookahead" in resume_state:
        lookahead.load_state_dict(resume_state["lookahead"])

    for epoch in range(first_epoch, cfg.epochs + 1):
        stats = train_epoch(opt, schedule, generator, epoch)
        if lookahead is not None:  # the epoch's model is the slow one, as airbench's
            lookahead.sync()
        train_s += stats.seconds
        val_start = time.perf_counter()
        scores = validate_epoch()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        val_s = time.perf_counter() - val_start
        schedule.after_epoch(stats.mean_loss if math.isnan(scores["val_loss"]) else
                             scores["val_loss"])
        last = scores[score]
        best = max(best, last)  # max(0.0, nan) is 0.0: no validation, no best
        offset = (epoch - 1) * steps_per_epoch
        metrics: Metrics = {
            "epoch": epoch, "train_loss": stats.mean_loss, **scores, "lr": stats.lr,
            "epoch_s": stats.seconds, "images_per_s": stats.examples / stats.seconds,
            "diverged": stats.diverged, "effective_lr": effective_lr(cfg.lr, cfg.batch_size),
            "params": cost.params, "peak_mem_mb": cost.peak_mem_mb,
            "latency_ms": val_s / val_images * 1000 if val_images else math.nan,
            "train_s": train_s,
            STEPS_KEY: [[offset + step, loss, lr] for step, loss, lr in stats.windows]}
        watch.update(epoch, metrics)
        # without validation images (a final retrain) there is nothing to watch
        stop = bool(cfg.patience and val_images) and watch.since >= cfg.patience \
            and epoch < cfg.epochs
        if stop:
            metrics[NO_IMPROVEMENT_KEY] = True
        if report is not None:
            report(metrics, _state(model, opt, schedule, epoch, best, generator, train_s, watch,
                                   lookahead))
        if stats.diverged or stop:
            return TrainResult(epoch, best, last, stats.diverged, model,
                               no_improvement=stop, patience_epoch=watch.best_epoch)
    return TrainResult(cfg.epochs, best, last, False, model, patience_epoch=watch.best_epoch)


def l1_penalty(model: torch.nn.Module) -> torch.Tensor:
    """sum |w| over the model's weight tensors (convolutions, linear layers): not its
    biases or normalisation scales, as weight decay conventionally spares them."""
    return torch.stack([w.abs().sum() for w in model.parameters()
                        if w.requires_grad and w.dim() > 1]).sum()


def window_ends(steps: int, windows: int = LOSS_WINDOWS) -> frozenset[int]:
    """The steps (from 0) that end an epoch's `windows` contiguous windows of
    (nearly) equal steps; fewer windows if the epoch has fewer steps."""
    if steps < 1 or windows < 1:
        return frozenset()
    return frozenset(int(chunk[-1]) for chunk in
                     np.array_split(np.arange(steps), min(windows, steps)))


def step_windows(sums: Sequence[float], marks: Sequence[tuple[int, int, float]]
                 ) -> tuple[Window, ...]:
    """An epoch's windows from the running loss sum (per example, summed) at each
    window's end, `sums`, and (steps so far, examples so far, lr) there, `marks`:
    (last step from 1, mean loss per example over the window, lr) each."""
    out, before_sum, before_seen = [], 0.0, 0
    for total, (step, seen, lr) in zip(sums, marks):
        out.append((step, (total - before_sum) / max(seen - before_seen, 1), lr))
        before_sum, before_seen = total, seen
    return tuple(out)


def run_steps(model: torch.nn.Module, opt: torch.optim.Optimizer, schedule: LRSchedule,
              device: torch.device, loss_of: LossOf,
              batches: Iterator[tuple[torch.Tensor, torch.Tensor]], *, l1: float = 0.0,
              steps: int = 0, windows: int = LOSS_WINDOWS) -> EpochStats:
    """Optimizer steps over `batches`, `loss_of(x, y)` each (plus `l1` times the
    model's l1_penalty, which the reported loss leaves out), and their EpochStats.
    The loss is read back only every DIVERGENCE_CHECK_EVERY steps; for the epoch's
    `windows` step windows (of its `steps` steps; 0: unknown, no windows) the
    running sum is copied on the device at each window's end and the copies read
    back once, with the epoch's loss: no sync beyond those (each syncs a GPU)."""
    model.train()
    start = time.perf_counter()
    loss_sum = torch.zeros((), device=device)
    ends = window_ends(steps, windows)
    sums: list[torch.Tensor] = []  # loss_sum at each window's end, on the device
    marks: list[tuple[int, int, float]] = []  # (steps, examples, lr) there
    seen, lr, step = 0, opt.param_groups[0]["lr"], -1
    for step, (x, y) in enumerate(batches):
        loss = loss_of(x, y)
        opt.zero_grad(set_to_none=True)
        (loss + l1 * l1_penalty(model) if l1 else loss).backward()
        lr = opt.param_groups[0]["lr"]
        opt.step()
        schedule.after_batch()
        loss_sum += loss.detach() * len(y)
        seen += len(y)
        if step in ends:
            sums.append(loss_sum.clone())
            marks.append((step + 1, seen, lr))
        if step % DIVERGENCE_CHECK_EVERY == 0 and not torch.isfinite(loss_sum):
            break
    if ends and (not marks or marks[-1][0] != step + 1):  # it stopped before its end
        sums.append(loss_sum.clone())
        marks.append((step + 1, seen, lr))
    totals = torch.stack(sums).cpu().tolist() if sums else []
    mean_loss = loss_sum.item() / max(seen, 1)  # after the .cpu(): no second wait on a GPU
    return EpochStats(mean_loss, seen, time.perf_counter() - start,
                      not math.isfinite(mean_loss), lr, step_windows(totals, marks))
