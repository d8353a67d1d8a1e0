"""The trainer as a Ray Tune function trainable: Tune's report, checkpoint
and restore are handed to the plain `train` function here and nowhere else."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import ray
import torch
from ray import tune

from pipelines.config import SegConfig, TrainConfig
from pipelines.data import DataSpec, TrainValData, open_split
from pipelines.seg_data import SegData, SegSpec, open_seg
from pipelines.seg_trainer import train_segmentation
from pipelines.sweep import with_carried
from pipelines.trainer import train

CHECKPOINT_FILE = "state.pt"


@functools.lru_cache(maxsize=2)
def _data(spec: DataSpec | SegSpec) -> TrainValData | SegData:
    # Once per worker process: reused actors keep the memory-mapped split.
    return open_seg(spec) if isinstance(spec, SegSpec) else open_split(spec)


def _restore_state() -> dict | None:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        return load_state(Path(d) / CHECKPOINT_FILE)


def load_state(path: Path) -> dict:
    """A trial's saved state. weights_only: tensors and plain containers only; a
    checkpoint holding any other object (code, on unpickling) is refused."""
    return torch.load(path, weights_only=True, map_location="cpu")


def _report(metrics: dict, state: dict, *, node_id: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        torch.save(state, Path(d) / CHECKPOINT_FILE)
        # node_id, not just Tune's node_ip: nodes that share a host share an IP
        tune.report({**metrics, "node_id": node_id},
                    checkpoint=tune.Checkpoint.from_directory(d))


def run_trial(config: dict, *, data: DataSpec | SegSpec, threads: int,
              carried: tuple[dict, ...] = ()) -> None:
    """Ray Tune entry point for one trial (classification or segmentation, by its
    data); a stage's trial builds on `carried`."""
    torch.set_num_threads(threads)
    report = functools.partial(_report, node_id=ray.get_runtime_context().get_node_id())
    config = with_carried(config, carried)
    if isinstance(data, SegSpec):
        train_segmentation(SegConfig.from_dict(config), _data(data), report=report,
                           resume_state=_restore_state())
    else:
        train(TrainConfig.from_dict(config), _data(data), report=report,
              resume_state=_restore_state())
