"""The trainer as a Ray Tune function trainable: Tune's report, checkpoint
and restore are handed to the plain `train` function here and nowhere else."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from pipelines.data.cifar10 import DataSpec
from pipelines.data.seg_folder import SegSpec
from pipelines.search.sweep import with_carried
from pipelines.training.loop import Metrics, State
from pipelines.training.tasks import TASKS

CHECKPOINT_FILE = "state.pt"
# What a task's prepare_data made on the driver; Tune ships it to every trial.
TrialData = DataSpec | SegSpec


@functools.lru_cache(maxsize=2)
def _data(task: str, spec: TrialData) -> Any:
    # Once per worker process: reused actors keep the memory-mapped split.
    return TASKS[task].open_data(spec)


def _restore_state() -> State | None:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        return load_state(Path(d) / CHECKPOINT_FILE)


def load_state(path: Path) -> State:
    """A trial's saved state. weights_only: tensors and plain containers only; a
    checkpoint holding any other object (code, on unpickling) is refused."""
    return torch.load(path, weights_only=True, map_location="cpu")


def _report(metrics: Metrics, state: State, *, node_id: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        torch.save(state, Path(d) / CHECKPOINT_FILE)
        # node_id, not just Tune's node_ip: nodes that share a host share an IP
        tune.report({**metrics, "node_id": node_id},
                    checkpoint=tune.Checkpoint.from_directory(d))


def run_trial(config: dict[str, Any], *, task: str, data: TrialData, threads: int,
              carried: tuple[dict[str, Any], ...] = ()) -> None:
    """Ray Tune entry point for one trial of `task` (a key of TASKS) on `data`,
    the spec its task prepared on the driver; a stage's trial builds on `carried`."""
    torch.set_num_threads(threads)
    report = functools.partial(_report, node_id=ray.get_runtime_context().get_node_id())
    TASKS[task].run_trial(with_carried(config, carried), _data(task, data), report=report,
                          resume_state=_restore_state())
