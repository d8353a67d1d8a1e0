"""The trainer as a Ray Tune function trainable: Tune's report, checkpoint
and restore are handed to the plain trainers (a built-in task's, or the sweep's
own function) here and nowhere else."""

from __future__ import annotations

import functools
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import ray
import torch
from ray import tune

from pipelines.data.images import DataSpec
from pipelines.data.seg_folder import SegSpec
from pipelines.records.tables import CHECKPOINT_RANK_KEY, INFEASIBLE_KEY
from pipelines.search.sweep import FUNCTION_TASK, Trainable, build_config, with_carried
from pipelines.search.sweep_loader import SweepRef, import_sweep
from pipelines.training.function import run_function
from pipelines.training.loop import Metrics, State
from pipelines.training.tasks import TASKS

CHECKPOINT_FILE = "state.pt"
# What a task's prepare_data made on the driver; Tune ships it to every trial.
TrialData = DataSpec | SegSpec


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of a run shares besides its config; Tune ships it to each."""

    task: str  # a key of TASKS, or "function" (the sweep's own trainable)
    data: TrialData | None  # a task's prepared data; None for a function
    threads: int  # torch threads
    carried: tuple[dict[str, Any], ...] = ()  # a stage's trial builds on these
    # the sweep's module, imported in the trial's process before anything else (what it
    # registers, e.g. its models, exists there too); None: a sweep built in-process
    sweep: SweepRef | None = None
    # a function sweep without a module (in-process): what Tune pickles instead
    function: Trainable | None = None
    config_class: type | None = None
    metric: str = ""
    objectives: tuple[tuple[str, str], ...] = ()  # (metric, mode) each, the primary first
    limits: Mapping[str, float] = field(default_factory=dict)  # start constraints (probe)


@functools.lru_cache(maxsize=2)
def _data(task: str, spec: TrialData) -> Any:
    # Once per worker process: reused actors keep the memory-mapped split.
    return TASKS[task].open_data(spec)


def _restore_state() -> State | None:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        path = Path(d) / CHECKPOINT_FILE
        # a checkpoint emptied after its trial finished (checkpoint_retention), by a
        # driver that died before Tune's snapshot said so: the trial runs again
        return load_state(path) if path.exists() else None


def load_state(path: Path) -> State:
    """A trial's saved state. weights_only: tensors and plain containers only; a
    checkpoint holding any other object (code, on unpickling) is refused."""
    return torch.load(path, weights_only=True, map_location="cpu")


def _report(metrics: Metrics, state: State | None, *, node_id: str,
            objectives: tuple[tuple[str, str], ...] = ()) -> None:
    # node_id, not just Tune's node_ip: nodes that share a host share an IP
    if metrics.get(INFEASIBLE_KEY):
        metrics = {**worst_values(objectives), **metrics}
    if state is None:
        tune.report({**metrics, "node_id": node_id})
        return
    rank = checkpoint_rank(metrics, objectives[0]) if objectives else 0.0
    with tempfile.TemporaryDirectory() as d:
        torch.save(state, Path(d) / CHECKPOINT_FILE)
        tune.report({**metrics, "node_id": node_id, CHECKPOINT_RANK_KEY: rank},
                    checkpoint=tune.Checkpoint.from_directory(d))


TIE_BREAK = 1e-12  # relative: far below any difference a metric's float32 maths resolves


def checkpoint_rank(metrics: Metrics, objective: tuple[str, str]) -> float:
    """What Tune ranks a report's checkpoint by (larger is better; it keeps the best
    and the latest, experiment.CHECKPOINTS): the primary objective's value, signed for
    its mode, an equal value ranked lower at a later epoch, so that the best kept is
    the first epoch to reach it, the best_epoch of trials.parquet; -inf without one."""
    metric, mode = objective
    value = metrics.get(metric)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return -math.inf
    signed = float(value) if mode == "max" else -float(value)
    return signed - (abs(signed) or 1e-300) * TIE_BREAK * float(metrics.get("epoch", 0))


def worst_values(objectives: tuple[tuple[str, str], ...]) -> Metrics:
    """What an infeasible trial (it trained nothing) scores on each objective it did
    not measure: the worst there is, so that a searcher told of it learns to avoid it."""
    return {metric: -math.inf if mode == "max" else math.inf for metric, mode in objectives}


def run_trial(config: dict[str, Any], *, setup: TrialSetup) -> None:
    """Ray Tune entry point for one trial: the sweep's module imported, then its
    task (or function) trained on the config, built on `setup.carried`."""
    torch.set_num_threads(setup.threads)
    sweep = import_sweep(setup.sweep) if setup.sweep is not None else None
    report = functools.partial(_report, node_id=ray.get_runtime_context().get_node_id(),
                               objectives=setup.objectives)
    values = with_carried(config, setup.carried)
    if setup.task != FUNCTION_TASK:
        assert setup.data is not None, "a task's trial needs its prepared data"
        TASKS[setup.task].run_trial(values, _data(setup.task, setup.data), report=report,
                                    resume_state=_restore_state(), limits=setup.limits,
                                    monitor=setup.objectives[0] if setup.objectives else None)
        return
    function, config_class = (sweep.trainable, sweep.config_class) if sweep is not None \
        else (setup.function, setup.config_class)
    assert function is not None, "a function trial needs the sweep's module or its function"
    run_function(function, build_config(config_class, values), metric=setup.metric,
                 save=report, resume_state=_restore_state(),
                 also=tuple(m for m, _ in setup.objectives if m != setup.metric))
