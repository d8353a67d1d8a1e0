"""The trainer as a Ray Tune function trainable: Tune's report, checkpoint
and restore are handed to the plain `train` function here and nowhere else."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import torch
from ray import tune

from pipelines.config import TrainConfig
from pipelines.data import DataSpec, TrainValData, open_split
from pipelines.trainer import train

CHECKPOINT_FILE = "state.pt"


@functools.lru_cache(maxsize=2)
def _data(spec: DataSpec) -> TrainValData:
    # Once per worker process: reused actors keep the memory-mapped split.
    return open_split(spec)


def _restore_state() -> dict | None:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        # weights_only: tensors and plain containers only, nothing is unpickled
        return torch.load(Path(d) / CHECKPOINT_FILE, weights_only=True, map_location="cpu")


def _report(metrics: dict, state: dict) -> None:
    with tempfile.TemporaryDirectory() as d:
        torch.save(state, Path(d) / CHECKPOINT_FILE)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def run_trial(config: dict, *, data: DataSpec, threads: int) -> None:
    """Ray Tune entry point for one trial."""
    torch.set_num_threads(threads)
    train(TrainConfig.from_dict(config), _data(data), report=_report,
          resume_state=_restore_state())
