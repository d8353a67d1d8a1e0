"""Ray Tune's count of the callbacks a run uses, skipped where Ray's usage
statistics are off.

Each `tune.run` (every Tuner.fit) given any callback records which built-in
ones it has (`ray.air._internal.usage.tag_callbacks`, Ray 2.60), and to know
them it imports the MLflow, W&B, Comet and Aim integrations, with mlflow and
wandb themselves when they are installed (`.[dev]` installs both): ~2 s of a
run's start, whether or not `--log` names a tracker. The tag is only sent
with Ray's usage statistics, so where they are off (RAY_USAGE_STATS_ENABLED=0,
as the tests and CI run) skipping it loses nothing. Where they are on, Ray's
own behaviour is kept."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from ray._common.usage import usage_lib
from ray.air._internal import usage as air_usage

__all__ = ["skipped_when_usage_stats_off"]


def _no_tag(callbacks: Any) -> bool:
    return False  # what Ray's returns when it records nothing


@contextlib.contextmanager
def skipped_when_usage_stats_off() -> Iterator[bool]:
    """During the block, Tune's callback tagging is skipped if Ray's usage
    statistics are off; yields whether it is."""
    if usage_lib.usage_stats_enabled():
        yield False
        return
    original = air_usage.tag_callbacks
    air_usage.tag_callbacks = _no_tag
    try:
        yield True
    finally:
        air_usage.tag_callbacks = original
