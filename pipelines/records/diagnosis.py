"""What a trial's training-loss curve says of its learning rate: a label and the
numbers behind it, for trials.parquet (`DIAGNOSIS_COLUMNS`).

The curve is the trial's step windows in step order (steps.parquet: up to 10 an
epoch, each the mean training loss per example over its steps). Every measure is
a fraction of the curve's start (its first window, `loss_start`), so one set of
thresholds serves any loss scale. The label, checked in this order:

- `diverged`: a window's loss is NaN or infinite, or one is more than
  DIVERGED_RATIO (3) times the start (`loss_peak_ratio`): the lr is far too high.
- `unstable`: the loss climbs back above a low it had already reached by more than
  UNSTABLE_RISE (0.2) of the start (`loss_rise`; the start counts as a low, so a
  rise right after the first window counts), or by more than
  UNSTABLE_RISE_WHEN_FLAT (0.12) where the curve would be `slow` (a crawl is
  smooth: a curve that climbs back yet gets nowhere is bouncing), or it wiggles
  from window to window by more than UNSTABLE_JITTER (0.1) of the start
  (`loss_jitter`, the median distance of a window from its neighbours' mean): too
  high.
- `slow`: after the first epoch the loss is still within SLOW_FIRST_EPOCH_DROP
  (0.05) of its start (`loss_drop_first_epoch`: the median of the END_WINDOWS (3)
  windows that follow the first epoch), or a least-squares line through the windows
  of the first SLOPE_EPOCHS (2) epochs falls by less than SLOW_DROP_PER_EPOCH (0.05)
  of the start per epoch (`loss_drop_per_epoch`): too low.
- `ok`: none of these.

The values come from real CIFAR-10 curves (plain_cnn and simple_cnn, 2,000-20,000
images, batch 64-256, sgd and adam, constant and onecycle, lr 1e-4 to 20 per 256
examples). A window of a small run holds one batch or a few (~100-500 examples),
whose mean wanders by ~0.05 (2% of a start of 2.3): good curves climbed by at most
~0.13 of their start and wiggled by at most ~0.04; too-high rates climbed by 0.15
to many times it. With the default warm-up schedules (onecycle, cosine) a tiny
run's first epoch, all warm-up, may gain little: good rates still lost >= 0.07 of
the start by just after it and >= 0.07 an epoch over two epochs, too-low ones
(1e-4, most of 1e-3) at most ~0.06 and ~0.035. Known blind spot: the start is a window's mean, so a
blow-up inside the first window (a constant schedule at a far-too-high rate,
where no warm-up holds the rate low) raises the start itself, and the curve then
looks like a fast fall.

`diagnose` costs O(windows) and never raises: a curve of fewer than MIN_WINDOWS
finite windows, or whose start is not above 0 (no scale to measure against), gets
no label (None) unless it diverged; a measure that cannot be taken is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "DIAGNOSIS_COLUMNS", "DIVERGED_RATIO", "END_WINDOWS", "LABELS", "MIN_WINDOWS",
    "SLOPE_EPOCHS", "SLOW_DROP_PER_EPOCH", "SLOW_FIRST_EPOCH_DROP", "UNSTABLE_JITTER",
    "UNSTABLE_RISE", "UNSTABLE_RISE_WHEN_FLAT", "diagnose",
]

LABELS = ("diverged", "unstable", "slow", "ok")  # in the order the rule checks them

DIVERGED_RATIO = 3.0  # a window above this many times the start: blown up
UNSTABLE_RISE = 0.2  # a climb above an earlier low, as a fraction of the start
UNSTABLE_RISE_WHEN_FLAT = 0.12  # ... for a curve that passes the slow test (a crawl is smooth)
UNSTABLE_JITTER = 0.1  # median wiggle of a window from its neighbours' mean, of the start
SLOW_FIRST_EPOCH_DROP = 0.05  # fraction of the start lost by just after the first epoch
SLOW_DROP_PER_EPOCH = 0.05  # fraction of the start lost per epoch over SLOPE_EPOCHS epochs
SLOPE_EPOCHS = 2  # epochs, from the first, that the slope is fitted over
END_WINDOWS = 3  # windows whose median is where an epoch ended (one window is noisy)
MIN_WINDOWS = 3  # finite windows needed to judge anything but divergence

DIAGNOSIS_COLUMNS: dict[str, str] = {  # trials.parquet's columns; the fractions are of the start
    "diagnosis": "string",  # one of LABELS; missing: no windows, or too few to judge
    "loss_start": "float64",  # the first window's mean training loss
    "loss_end": "float64",  # the median of the last END_WINDOWS finite windows
    "loss_peak_ratio": "float64",  # the highest finite window / the start
    "loss_rise": "float64",  # the largest climb above an earlier low, a fraction of the start
    "loss_jitter": "float64",  # median |window - mean of its neighbours|, a fraction
    "loss_drop_first_epoch": "float64",  # start - the loss just after the first epoch, a fraction
    "loss_drop_per_epoch": "float64",  # minus the fitted slope over SLOPE_EPOCHS epochs
}


def diagnose(epochs: Sequence[int], losses: Sequence[float]) -> dict[str, Any]:
    """The label of one trial's curve and its statistics (every key of
    DIAGNOSIS_COLUMNS): `epochs[i]` is the epoch of window i, `losses[i]` its mean
    training loss, in step order. No windows: label None, every statistic NaN."""
    with np.errstate(all="ignore"):  # extreme losses overflow to inf, which the rule reads
        stats = _statistics(epochs, losses)
    stats["diagnosis"] = _label(stats, losses)
    return {name: stats[name] for name in DIAGNOSIS_COLUMNS}


def _label(stats: dict[str, Any], losses: Sequence[float]) -> str | None:
    """The first of LABELS whose test the statistics pass (NaN passes none)."""
    if not len(losses):
        return None
    if stats["finite"] < len(losses) or stats["loss_peak_ratio"] > DIVERGED_RATIO:
        return "diverged"
    if stats["finite"] < MIN_WINDOWS or not stats["loss_start"] > 0:
        return None
    too_low = (stats["loss_drop_first_epoch"] < SLOW_FIRST_EPOCH_DROP
               or stats["loss_drop_per_epoch"] < SLOW_DROP_PER_EPOCH)
    rise = stats["loss_rise"]
    if (rise > UNSTABLE_RISE or stats["loss_jitter"] > UNSTABLE_JITTER
            or (too_low and rise > UNSTABLE_RISE_WHEN_FLAT)):
        return "unstable"
    return "slow" if too_low else "ok"


def _statistics(epochs: Sequence[int], losses: Sequence[float]) -> dict[str, Any]:
    """The statistics of DIAGNOSIS_COLUMNS (NaN where they cannot be taken) and the
    count of finite windows, `finite`; taken over the finite windows alone."""
    nan = math.nan
    stats: dict[str, Any] = dict.fromkeys(DIAGNOSIS_COLUMNS, nan)
    try:
        loss = np.asarray(losses, dtype=np.float64).ravel()
        epoch = np.asarray(epochs, dtype=np.float64).ravel()
    except (TypeError, ValueError):  # not numbers: nothing to measure
        return {**stats, "finite": 0}
    if len(epoch) != len(loss):
        epoch = np.full(len(loss), np.nan)
    keep = np.isfinite(loss)
    stats["finite"] = int(keep.sum())
    loss, epoch = loss[keep], epoch[keep]
    if not len(loss):
        return stats
    start = float(loss[0])
    stats["loss_start"] = start
    stats["loss_end"] = float(np.median(loss[-END_WINDOWS:]))
    if not start > 0:  # the fractions need a positive scale
        return stats
    stats["loss_peak_ratio"] = float(loss.max() / start)
    if len(loss) > 1:
        lows = np.minimum.accumulate(loss)[:-1]  # the lowest before each later window
        stats["loss_rise"] = max(0.0, float((loss[1:] - lows).max() / start))
    if len(loss) > 2:
        wiggle = loss[1:-1] - (loss[:-2] + loss[2:]) / 2
        stats["loss_jitter"] = float(np.median(np.abs(wiggle)) / start)
    stats["loss_drop_first_epoch"] = _first_epoch_drop(epoch, loss, start)
    stats["loss_drop_per_epoch"] = _drop_per_epoch(epoch, loss, start)
    return stats


def _first_epoch_drop(epoch: np.ndarray, loss: np.ndarray, start: float) -> float:
    """(start - where the loss stood after the first epoch) / start: the median of
    the END_WINDOWS windows that follow the first epoch, or, where no window does (a
    trial of one epoch), of its last END_WINDOWS windows; NaN with fewer than
    MIN_WINDOWS windows in all, or epochs that are not numbers."""
    if not np.isfinite(epoch).all() or len(loss) < MIN_WINDOWS:
        return math.nan
    after = loss[epoch > epoch[0]][:END_WINDOWS]
    end = after if len(after) else loss[-END_WINDOWS:]
    return float((start - np.median(end)) / start)


def _drop_per_epoch(epoch: np.ndarray, loss: np.ndarray, start: float) -> float:
    """Minus the slope (per epoch, as a fraction of the start) of the least-squares
    line through the windows of the first SLOPE_EPOCHS epochs, each window placed at
    its epoch's fraction (an epoch's k-th of n windows at epoch - 1 + k/n); NaN
    with fewer than two windows there."""
    if not np.isfinite(epoch).all():
        return math.nan
    near = epoch < epoch[0] + SLOPE_EPOCHS
    epoch, loss = epoch[near], loss[near]
    if len(loss) < 2:
        return math.nan
    # windows are in step order, so each epoch's are contiguous
    _, first_of, counts = np.unique(epoch, return_index=True, return_counts=True)
    index = np.arange(len(loss)) - np.repeat(first_of, counts)  # k - 1 within its epoch
    x = epoch - 1 + (index + 1) / np.repeat(counts, counts)
    spread = x - x.mean()
    var = float((spread ** 2).sum())
    if var <= 0:
        return math.nan
    slope = float((spread * (loss - loss.mean())).sum() / var)
    return -slope / start
