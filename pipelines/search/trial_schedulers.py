"""Trial schedulers by name: which trials to stop early (or pause) and when."""

from __future__ import annotations

from typing import Callable

from ray.tune.schedulers import (
    ASHAScheduler,
    FIFOScheduler,
    HyperBandScheduler,
    MedianStoppingRule,
    TrialScheduler,
)

TIME_ATTR = "epoch"  # the trainer reports it; it survives restores, unlike iteration counts


def _asha(*, max_epochs: int, grace_period: int, reduction_factor: int,
          metric: str | None = None, mode: str | None = None) -> TrialScheduler:
    return ASHAScheduler(time_attr=TIME_ATTR, max_t=max_epochs, grace_period=grace_period,
                         reduction_factor=reduction_factor, metric=metric, mode=mode)


def _hyperband(*, max_epochs: int, grace_period: int, reduction_factor: int,
               metric: str | None = None, mode: str | None = None) -> TrialScheduler:
    # Synchronous HyperBand pauses trials at rungs; they resume from checkpoints.
    return HyperBandScheduler(time_attr=TIME_ATTR, max_t=max_epochs,
                              reduction_factor=reduction_factor, metric=metric, mode=mode)


def _median(*, max_epochs: int, grace_period: int, reduction_factor: int,
            metric: str | None = None, mode: str | None = None) -> TrialScheduler:
    return MedianStoppingRule(time_attr=TIME_ATTR, grace_period=grace_period,
                              min_samples_required=3, metric=metric, mode=mode)


def _none(**_: object) -> TrialScheduler:
    return FIFOScheduler()


SCHEDULERS: dict[str, Callable[..., TrialScheduler]] = {
    "asha": _asha, "hyperband": _hyperband, "median": _median, "none": _none,
}


def build_scheduler(name: str, *, max_epochs: int, grace_period: int, reduction_factor: int,
                    metric: str | None = None, mode: str | None = None) -> TrialScheduler:
    """The trial scheduler called `name` (a key of SCHEDULERS); epochs are its time unit.
    `metric`/`mode`: the objective it stops on, when Tune's TuneConfig names none (a
    search on several objectives stops on the first)."""
    return SCHEDULERS[name](max_epochs=max_epochs, grace_period=grace_period,
                            reduction_factor=reduction_factor, metric=metric, mode=mode)
