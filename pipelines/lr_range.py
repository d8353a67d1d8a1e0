"""Leslie Smith's learning-rate range test (Smith 2017, "Cyclical Learning Rates",
section 3.3): train for a bounded number of steps while the learning rate grows
exponentially from tiny to huge, smooth the loss, stop once it diverges, and
read a good learning rate off the curve.

Learning rates here are per 256 examples, the sweep's unit (pipelines.optim):
the optimizer gets lr * batch_size / 256.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from models import build_model
from pipelines.augment import augment
from pipelines.config import TrainConfig
from pipelines.data import NUM_CLASSES, TrainValData
from pipelines.optim import build_optimizer, effective_lr
from pipelines.trainer import _batches, default_device


@dataclass(frozen=True)
class RangeTest:
    start_lr: float = 1e-7  # per 256 examples
    end_lr: float = 10.0
    num_iter: int = 300  # steps at most (~8 s for simple_cnn on one CPU thread)
    smoothing: float = 0.95  # exponential moving average of the loss (bias-corrected)
    diverge_factor: float = 4.0  # stop once the smoothed loss exceeds this x its minimum
    min_drop: float = 0.1  # the smoothed loss must fall 10% below its start to suggest


@dataclass
class RangeResult:
    curve: pd.DataFrame  # step, lr, effective_lr, loss, smoothed_loss
    steepest: float | None  # lr at the steepest descent of the smoothed loss
    valley: float | None  # lr halfway down the longest descent (fastai's "valley" rule)
    stopped: str  # "diverged" | "end_lr" | "non-finite loss"
    why_no_suggestion: str | None = None

    @property
    def suggestion(self) -> float | None:
        """Smith's rule: where the loss falls fastest. The valley rule is more
        conservative (lower); both are recorded."""
        return self.steepest


def lr_at(step: int, test: RangeTest) -> float:
    """Exponential schedule: start_lr at step 0, end_lr at the last step."""
    return test.start_lr * (test.end_lr / test.start_lr) ** (step / max(test.num_iter - 1, 1))


def range_test(cfg: TrainConfig, data: TrainValData, test: RangeTest = RangeTest(),
               device: torch.device | None = None,
               model: torch.nn.Module | None = None) -> RangeResult:
    """Run the test on `cfg`'s model (or `model`, whose weights are restored after)."""
    device = device or default_device()
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    if model is None:
        model = build_model(cfg.model, num_classes=NUM_CLASSES, width=cfg.width,
                            depth=cfg.depth, dropout=cfg.dropout)
    model = model.to(device)
    saved_model = copy.deepcopy(model.state_dict())
    opt = build_optimizer(model.parameters(), cfg)
    saved_opt = copy.deepcopy(opt.state_dict())
    try:
        rows, stopped = _run(model, opt, cfg, data, test, device, generator)
    finally:  # the test leaves the model and optimizer as it found them
        model.load_state_dict(saved_model)
        opt.load_state_dict(saved_opt)
    return suggest(pd.DataFrame(rows), stopped, test)


def _run(model, opt, cfg, data, test, device, generator):
    model.train()
    rows, avg, best = [], 0.0, math.inf
    for step, (x, y) in enumerate(_endless_batches(data, cfg.batch_size, device, generator)):
        if step >= test.num_iter:
            return rows, "end_lr"
        lr = lr_at(step, test)
        for group in opt.param_groups:
            group["lr"] = effective_lr(lr, cfg.batch_size)
        x = augment(x, crop_padding=cfg.crop_padding, flip_prob=cfg.flip_prob,
                    generator=generator)
        loss = F.cross_entropy(model(x), y, label_smoothing=cfg.label_smoothing)
        value = loss.item()
        if not math.isfinite(value):
            return rows, "non-finite loss"
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        avg = test.smoothing * avg + (1 - test.smoothing) * value
        smoothed = avg / (1 - test.smoothing ** (step + 1))
        rows.append({"step": step, "lr": lr, "effective_lr": effective_lr(lr, cfg.batch_size),
                     "loss": value, "smoothed_loss": smoothed})
        best = min(best, smoothed)
        if smoothed > test.diverge_factor * best:
            return rows, "diverged"
    return rows, "end_lr"


def _endless_batches(data: TrainValData, batch_size: int, device, generator):
    while True:
        order = torch.randperm(len(data.train_idx), generator=generator)
        yield from _batches(data, data.train_idx, batch_size, device, order)


def suggest(curve: pd.DataFrame, stopped: str, test: RangeTest = RangeTest()) -> RangeResult:
    """Suggestions from a curve, or the reason there is none: a loss that never
    fell (by `min_drop`) below where it started means no learning rate in the
    range trains this model."""
    columns = ["step", "lr", "effective_lr", "loss", "smoothed_loss"]
    curve = curve.reindex(columns=columns)
    if len(curve) < 20:
        return RangeResult(curve, None, None, stopped,
                           f"the loss {'diverged' if stopped != 'end_lr' else 'stopped'} "
                           f"within {len(curve)} steps, from lr {test.start_lr:g}")
    smoothed = curve["smoothed_loss"].to_numpy()
    start = smoothed[: max(3, len(smoothed) // 20)].mean()
    if smoothed.min() > (1 - test.min_drop) * start:
        return RangeResult(curve, None, None, stopped,
                           f"the smoothed loss never fell {test.min_drop:.0%} below its start "
                           f"({start:.3g}) between lr {test.start_lr:g} and "
                           f"{curve['lr'].iloc[-1]:.3g}")
    # as fastai does: skip the first tenth (the average is still warming up) and the
    # last five points (the blow-up), where the slope says nothing
    usable = slice(len(curve) // 10, len(curve) - 5)
    lrs, losses = curve["lr"].to_numpy()[usable], smoothed[usable]
    slope = np.gradient(losses, np.log10(lrs))
    return RangeResult(curve, float(lrs[int(np.argmin(slope))]), float(lrs[_valley(losses)]),
                       stopped)


def _valley(losses: np.ndarray) -> int:
    """fastai's valley rule: the longest run of decreasing loss (as a longest
    decreasing subsequence), then the point halfway down it (a third plus a sixth)."""
    n = len(losses)
    longest = [1] * n
    end = start = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
        if longest[i] > longest[end]:
            end, start = i, i - longest[i]
    third = (end - start) / 3
    return min(n - 1, start + int(third) + int(third / 2))
