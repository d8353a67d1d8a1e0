"""Learning-rate schedules by name, behind one small interface: the trainer
calls `after_batch()` every step and `after_epoch(val_loss)` every epoch."""

from __future__ import annotations

import math
from typing import Any, Callable, Protocol

import torch
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau


class ScheduleSettings(Protocol):
    """What a schedule reads of a config (every task's config has these)."""

    @property
    def schedule(self) -> str: ...
    @property
    def epochs(self) -> int: ...  # the schedule's horizon
    @property
    def warmup_epochs(self) -> float: ...
    @property
    def step_size(self) -> float: ...  # step: epochs between decays; 0 = at 50% and 75%
    @property
    def gamma(self) -> float: ...  # step: the lr's factor at each decay
    @property
    def plateau_factor(self) -> float: ...  # plateau: the lr's factor at each reduction
    @property
    def plateau_patience(self) -> int: ...  # plateau: epochs without improvement first
    @property
    def lr_start_factor(self) -> float: ...  # triangle: the first step's lr, of the peak
    @property
    def lr_end_factor(self) -> float: ...  # triangle: the last step's lr, of the peak


class LRSchedule:
    """A torch LR scheduler behind the trainer's two calls."""

    # any torch scheduler (ReduceLROnPlateau is an LRScheduler too, in the torch >= 2.3 this
    # project needs); a plateau one is stepped with the epoch's loss, never per batch
    def __init__(self, scheduler: LRScheduler, *, per_batch: bool) -> None:
        self.scheduler, self.per_batch = scheduler, per_batch

    def after_batch(self) -> None:
        if self.per_batch:
            self.scheduler.step()

    def after_epoch(self, val_loss: float) -> None:
        if isinstance(self.scheduler, ReduceLROnPlateau):
            self.scheduler.step(val_loss)

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)


def _warmup_cosine(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


ONECYCLE_START = 1 / 25  # of the peak, as torch's OneCycleLR (div_factor=25)
ONECYCLE_END = ONECYCLE_START / 1e4  # final_div_factor=1e4


def _one_cycle(step: int, total: int, rise: int) -> float:
    """Cosine rise from START to 1 over `rise` steps, cosine fall to END by `total`.
    Unlike torch's OneCycleLR it works for any number of steps, even 1, and
    leaves momentum alone, so the searched momentum means what it says."""
    if step < rise:
        return ONECYCLE_START + (1 - ONECYCLE_START) * 0.5 * (1 - math.cos(math.pi * step / rise))
    progress = min(1.0, (step - rise) / max(1, total - rise))
    return ONECYCLE_END + (1 - ONECYCLE_END) * 0.5 * (1 + math.cos(math.pi * progress))


def _onecycle(opt: torch.optim.Optimizer, cfg: ScheduleSettings, steps_per_epoch: int
              ) -> LRSchedule:
    total = cfg.epochs * steps_per_epoch
    rise_fraction = min(0.5, max(0.01, cfg.warmup_epochs / cfg.epochs))
    rise = max(1, round(rise_fraction * total))
    return LRSchedule(LambdaLR(opt, lambda s: _one_cycle(s, total, rise)), per_batch=True)


def _cosine(opt: torch.optim.Optimizer, cfg: ScheduleSettings, steps_per_epoch: int
            ) -> LRSchedule:
    total = cfg.epochs * steps_per_epoch
    # at most half the run warms up, so the cosine always decays (as onecycle's rise)
    warmup = min(round(cfg.warmup_epochs * steps_per_epoch), total // 2)
    return LRSchedule(LambdaLR(opt, lambda s: _warmup_cosine(s, total, warmup)), per_batch=True)


def _decays(step: int, period: int, milestones: tuple[int, ...]) -> int:
    """How many decays precede optimizer step `step` (from 0): one every `period`
    steps, or (period 0) one at each of `milestones`."""
    return step // period if period else sum(step >= m for m in milestones)


def _step(opt: torch.optim.Optimizer, cfg: ScheduleSettings, steps_per_epoch: int
          ) -> LRSchedule:
    """The lr times `gamma` every `step_size` epochs (at least every step), or with
    step_size 0 at 50% and 75% of the run (the classic ÷10 twice, gamma 0.1)."""
    total = cfg.epochs * steps_per_epoch
    period = max(1, round(cfg.step_size * steps_per_epoch)) if cfg.step_size else 0
    milestones, gamma = (int(0.5 * total), int(0.75 * total)), cfg.gamma
    return LRSchedule(LambdaLR(opt, lambda s: gamma ** _decays(s, period, milestones)),
                      per_batch=True)


def _plateau(opt: torch.optim.Optimizer, cfg: ScheduleSettings, steps_per_epoch: int
             ) -> LRSchedule:
    """The lr times `plateau_factor` once the epoch's validation loss (the training
    loss without a validation split) has not improved for `plateau_patience` epochs."""
    return LRSchedule(ReduceLROnPlateau(opt, factor=cfg.plateau_factor,
                                        patience=cfg.plateau_patience), per_batch=False)


def triangle_factor(step: int, total: int, peak: int, start: float, end: float) -> float:
    """The lr of step `step` (from 0) of `total`, a fraction of the peak: linear from
    `start` at step 0 to 1 at step `peak`, then linear to `end` at step `total`."""
    if step < peak:
        return start + (1 - start) * step / peak
    return 1 + (end - 1) * min(1.0, (step - peak) / max(1, total - peak))


def _triangle(opt: torch.optim.Optimizer, cfg: ScheduleSettings, steps_per_epoch: int
              ) -> LRSchedule:
    """airbench's schedule: a linear rise from `lr_start_factor` of the peak over
    `warmup_epochs` (airbench: 0.2, over 23% of the run), a linear fall to
    `lr_end_factor` of it at the last step (airbench: 0.07, not 0). At most half
    the run rises, so the lr always falls (as onecycle's and cosine's warm-ups)."""
    total = cfg.epochs * steps_per_epoch
    peak = min(round(cfg.warmup_epochs * steps_per_epoch), total // 2)
    start, end = cfg.lr_start_factor, cfg.lr_end_factor
    return LRSchedule(LambdaLR(opt, lambda s: triangle_factor(s, total, peak, start, end)),
                      per_batch=True)


def _constant(opt: torch.optim.Optimizer, cfg: ScheduleSettings, steps_per_epoch: int
              ) -> LRSchedule:
    return LRSchedule(LambdaLR(opt, lambda s: 1.0), per_batch=True)


# build(opt, cfg, steps_per_epoch): a schedule of `opt`'s learning rate over cfg.epochs
ScheduleBuilder = Callable[[torch.optim.Optimizer, ScheduleSettings, int], LRSchedule]

SCHEDULES: dict[str, ScheduleBuilder] = {
    "onecycle": _onecycle, "cosine": _cosine, "step": _step,
    "plateau": _plateau, "constant": _constant, "triangle": _triangle,
}


def build_schedule(opt: torch.optim.Optimizer, cfg: ScheduleSettings,
                   steps_per_epoch: int) -> LRSchedule:
    """`cfg.schedule`'s schedule of `opt`, for `cfg.epochs` epochs of `steps_per_epoch`."""
    return SCHEDULES[cfg.schedule](opt, cfg, steps_per_epoch)
