"""Leslie Smith's learning-rate range test (Smith 2017, "Cyclical Learning Rates",
section 3.3): train for a bounded number of steps while the learning rate grows
exponentially from tiny to huge, smooth the loss, stop once it diverges, and
read a good learning rate off the curve.

Learning rates here are per 256 examples, the sweep's unit (pipelines.training.optim):
the optimizer gets lr * batch_size / 256.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from pipelines.data.images import TrainValData
from pipelines.records.tables import LR_CURVE_COLUMNS
from pipelines.training.augmentation import augment
from pipelines.training.classify import batches, build_classifier
from pipelines.training.config import TrainConfig
from pipelines.training.loop import default_device
from pipelines.training.optim import build_optimizer, effective_lr

MIN_ITER = 50  # fewer steps: the smoothed loss lags most of the range


@dataclass(frozen=True)
class RangeTest:
    start_lr: float = 1e-7  # per 256 examples
    end_lr: float = 10.0
    num_iter: int = 300  # steps at most (~10 s for simple_cnn on 5,000 images, 2 threads)
    smoothing: float = 0.95  # exponential moving average of the loss (bias-corrected)
    diverge_factor: float = 4.0  # stop once the smoothed loss exceeds this x its minimum
    min_drop: float = 0.1  # the smoothed loss must fall 10% below its start to suggest

    def __post_init__(self) -> None:
        if not (0 < self.start_lr < self.end_lr and math.isfinite(self.end_lr)):
            raise ValueError(f"need 0 < start_lr < end_lr < inf, got {self.start_lr:g} and "
                             f"{self.end_lr:g}")
        if self.num_iter < MIN_ITER:
            raise ValueError(f"num_iter must be >= {MIN_ITER}, got {self.num_iter}")


@dataclass
class RangeResult:
    curve: pd.DataFrame  # step, lr, effective_lr, loss, smoothed_loss
    steepest: float | None  # lr at the steepest descent of the smoothed loss
    valley: float | None  # lr halfway down the longest descent (fastai's "valley" rule)
    stopped: str  # "diverged" | "reached end_lr" | "became non-finite"
    why_no_suggestion: str | None = None

    @property
    def suggestion(self) -> float | None:
        """Smith's rule: where the loss falls fastest. The valley rule (usually more
        conservative) is recorded beside it."""
        return self.steepest


def lr_at(step: int, test: RangeTest) -> float:
    """Exponential schedule: start_lr at step 0, end_lr at the last step."""
    return test.start_lr * (test.end_lr / test.start_lr) ** (step / max(test.num_iter - 1, 1))


def range_test(cfg: TrainConfig, data: TrainValData, test: RangeTest = RangeTest(),
               device: torch.device | None = None,
               model: torch.nn.Module | None = None) -> RangeResult:
    """Run the test on `cfg`'s model, or on a copy of `model`: the caller's model
    (weights, device, mode) is left as it was, and the optimizer is the test's own."""
    device = device or default_device()
    generator = torch.Generator().manual_seed(cfg.seed)
    if model is None:
        with torch.random.fork_rng(devices=[]):  # seed the weights, not the caller's RNG
            torch.manual_seed(cfg.seed)
            model = build_classifier(cfg, data.info, device)  # as the trials build it
    else:
        model = copy.deepcopy(model)
    model = model.to(device)
    opt = build_optimizer(model, cfg)
    rows, stopped = _run(model, opt, cfg, data, test, device, generator)
    return suggest(pd.DataFrame(rows), stopped, test)


def _run(model: torch.nn.Module, opt: torch.optim.Optimizer, cfg: TrainConfig,
         data: TrainValData, test: RangeTest, device: torch.device,
         generator: torch.Generator) -> tuple[list[dict[str, float]], str]:
    """The curve's rows (one per step) and why it stopped."""
    model.train()
    rows: list[dict[str, float]] = []
    avg, best = 0.0, math.inf
    # each group's lr relative to the first's (bn_bias_lr), kept as the test sweeps the lr
    scales = [group["lr"] / opt.param_groups[0]["lr"] for group in opt.param_groups]
    for step, (x, y) in enumerate(_endless_batches(data, cfg.batch_size, device, generator)):
        if step >= test.num_iter:
            return rows, "reached end_lr"
        lr = lr_at(step, test)
        for group, scale in zip(opt.param_groups, scales):
            group["lr"] = effective_lr(lr, cfg.batch_size) * scale
        x = augment(x, crop_padding=cfg.crop_padding, padding_mode=cfg.padding_mode,
                    flip_prob=cfg.flip_prob, brightness=cfg.brightness, contrast=cfg.contrast,
                    mean=data.info.mean, std=data.info.std, generator=generator)
        loss = F.cross_entropy(model(x), y, label_smoothing=cfg.label_smoothing)
        value = loss.item()
        if not math.isfinite(value):
            return rows, "became non-finite"
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
    return rows, "reached end_lr"


def _endless_batches(data: TrainValData, batch_size: int, device: torch.device,
                     generator: torch.Generator) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    # a fresh shuffle of the training split each pass, for as many steps as the test takes
    while True:
        order = torch.randperm(len(data.train_idx), generator=generator)
        yield from batches(data, data.train_idx, batch_size, device, order)


def suggest(curve: pd.DataFrame, stopped: str, test: RangeTest = RangeTest()) -> RangeResult:
    """Suggestions from a curve, or the reason there is none: a loss that never
    fell (by `min_drop`) below where it started means no learning rate in the
    range trains this model."""
    curve = curve.reindex(columns=list(LR_CURVE_COLUMNS)).astype(LR_CURVE_COLUMNS)
    last_lr = curve["lr"].iloc[-1] if len(curve) else test.start_lr
    if len(curve) < MIN_ITER // 2:
        return RangeResult(curve, None, None, stopped,
                           f"the loss {stopped} after {len(curve)} steps, at lr {last_lr:.3g}; "
                           f"lower the start lr or take more steps")
    smoothed = curve["smoothed_loss"].to_numpy()
    start = smoothed[: max(3, len(smoothed) // 20)].mean()
    if smoothed.min() > (1 - test.min_drop) * start:
        return RangeResult(curve, None, None, stopped,
                           f"the smoothed loss never fell {test.min_drop:.0%} below its start "
                           f"({start:.3g}) between lr {test.start_lr:g} and {last_lr:.3g}")
    # Like fastai, skip the first tenth (noisy) and the last five points (the blow-up);
    # and look only up to the lowest loss: past it, nothing descends.
    lo, hi = len(curve) // 10, min(len(curve) - 5, int(np.argmin(smoothed)) + 1)
    if hi - lo < 5:
        return RangeResult(curve, None, None, stopped,
                           f"the loss fell only in the first {hi} steps (lr up to "
                           f"{curve['lr'].iloc[max(hi - 1, 0)]:.3g}); lower the start lr")
    lrs, losses = curve["lr"].to_numpy()[lo:hi], smoothed[lo:hi]
    slope = np.gradient(losses, np.log10(lrs))
    return RangeResult(curve, float(lrs[int(np.argmin(slope))]), float(lrs[valley(losses)]),
                       stopped)


def valley(losses: np.ndarray) -> int:
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
    return max(0, start + int(third) + int(third / 2))  # start is -1 if it falls from 0
