"""The tasks a sweep can run, by name: each is one entry of config class,
trainer, data (prepared on the driver, opened in the trial) and the
capabilities the tools around it need. Code looks a task up here rather than
branching on its name."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Callable, Generic, Mapping, Protocol, TypeVar

import torch

from pipelines.data import images, seg_folder
from pipelines.errors import UsageError
from pipelines.records.tables import INFEASIBLE_KEY
from pipelines.training.classify import epoch_images, probe, train
from pipelines.training.config import BaseConfig, SegConfig, TrainConfig
from pipelines.training.cost import Cost, exceeded
from pipelines.training.loop import Metrics, Report, State, TrainResult
from pipelines.training.segment import epoch_crops, probe_segmentation, train_segmentation

__all__ = ["TASKS", "Task", "task"]

ConfigT = TypeVar("ConfigT", bound=BaseConfig)  # the task's config class
SourceT = TypeVar("SourceT")  # a sweep's `data`: an ImageSource (None: CIFAR-10), a SegDataset
SpecT = TypeVar("SpecT")  # the small picklable spec that travels to the trials
DataT = TypeVar("DataT")  # the opened split the trainer reads
_Cfg = TypeVar("_Cfg", bound=BaseConfig, contravariant=True)
_Data = TypeVar("_Data", contravariant=True)
# a trial's report(metrics, state): a trainer's Report, which may also be told there is no
# state (an infeasible trial's one report)
TrialReport = Callable[[Metrics, "State | None"], None]


class Trainer(Protocol[_Cfg, _Data]):
    """train(cfg, data, *, report, resume_state, cost, monitor): a task's plain trainer
    (no Ray); `cost` is what the task's probe measured (None: the trainer probes);
    `monitor` the (metric, mode) its patience watches (None: its own score)."""

    def __call__(self, cfg: _Cfg, data: _Data, /, *, report: Report | None,
                 resume_state: State | None, cost: Cost | None = None,
                 monitor: tuple[str, str] | None = None) -> TrainResult: ...


class Prober(Protocol[_Cfg, _Data]):
    """probe(cfg, data, device=None): a configuration's Cost, measured before it trains
    (its model built, one training step)."""

    def __call__(self, cfg: _Cfg, data: _Data, device: torch.device | None = None, /
                 ) -> Cost: ...


@dataclass(frozen=True)
class Task(Generic[ConfigT, SourceT, SpecT, DataT]):
    """One task: the types of one entry agree (the trainer takes the config class and
    the split that open_data opens from the spec that prepare_data makes)."""

    name: str
    config_class: type[ConfigT]
    train: Trainer[ConfigT, DataT]
    # prepare(data_dir, sweep.data, train_size, val_size, seed) -> a small picklable
    # spec: on the driver, decoded once per machine and the split checked
    prepare_data: Callable[[str | None, SourceT, int | None, int | None, int], SpecT]
    open_data: Callable[[SpecT], DataT]  # spec -> the split, in the trial's process
    data_type: type  # what a sweep's `data` must be
    data_required: bool  # False: None means the task's default data (CIFAR-10)
    metric: str  # the default metric a sweep of this task optimises
    range_test: bool  # the LR range test (lr_find, --lr-range auto) runs on it
    test_split: bool  # --final retrains the winner and scores it on a test split
    probe: Prober[ConfigT, DataT]  # the configuration's Cost, before it trains
    # examples(cfg, data): training examples per epoch, the largest batch worth trying
    examples: Callable[[ConfigT, DataT], int]
    # the metrics its trainer reports every epoch (besides the cost columns): what a
    # sweep may name as an objective
    reports: tuple[str, ...] = ()

    def run_trial(self, config: dict[str, Any], data: DataT, *, report: TrialReport | None,
                  resume_state: State | None,
                  limits: Mapping[str, float] | None = None,
                  monitor: tuple[str, str] | None = None) -> TrainResult | None:
        """Validate `config` as this task's config, probe its cost and train it. A
        fresh trial whose cost breaks a start constraint (`limits`, over
        START_CONSTRAINTS) trains nothing: it reports once, {infeasible: True, epoch: 0,
        params, peak_mem_mb} without a state, and None is returned. A resumed trial
        passed that check when it started and is not judged again. `monitor`: the
        sweep's (metric, mode), which the config's `patience` watches."""
        cfg = self.config_class.from_dict(config)
        cost = self.probe(cfg, data)
        broken = exceeded(cost, limits or {}) if resume_state is None else []
        if not broken:
            return self.train(cfg, data, report=report, resume_state=resume_state, cost=cost,
                              monitor=monitor)
        print(f"infeasible, not trained: {'; '.join(broken)}", file=sys.stderr, flush=True)
        if report is not None:
            report({INFEASIBLE_KEY: True, "epoch": 0, "params": cost.params,
                    "peak_mem_mb": cost.peak_mem_mb}, None)
        return None


# Each entry is built on its own, so that mypy checks its parts against each other (inside
# the table's annotation it would not); the table mixes tasks of different types: Any.
CLASSIFICATION = Task("classification", TrainConfig, train, images.prepare, images.open_split,
                      data_type=images.ImageSource, data_required=False, metric="val_acc",
                      range_test=True, test_split=True, probe=probe,
                      examples=epoch_images,
                      reports=("val_acc", "val_loss", "train_loss", "images_per_s", "epoch_s"))
SEGMENTATION = Task("segmentation", SegConfig, train_segmentation, seg_folder.prepare,
                    seg_folder.open_seg, data_type=seg_folder.SegDataset, data_required=True,
                    metric="val_miou", range_test=False, test_split=False,
                    probe=probe_segmentation, examples=epoch_crops,
                    reports=("val_miou", "val_dice", "val_pixel_acc", "val_loss", "train_loss",
                             "images_per_s", "epoch_s"))
TASKS: dict[str, Task[Any, Any, Any, Any]] = {t.name: t for t in (CLASSIFICATION, SEGMENTATION)}


def task(name: str) -> Task[Any, Any, Any, Any]:
    """The task called `name`; a UsageError naming the known ones otherwise."""
    if name not in TASKS:
        raise UsageError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]
