"""The tasks a sweep can run, by name: each is one entry of config class,
trainer, data (prepared on the driver, opened in the trial) and the
capabilities the tools around it need. Code looks a task up here rather than
branching on its name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pipelines.data import cifar10, seg_folder
from pipelines.errors import UsageError
from pipelines.training.classify import train
from pipelines.training.config import BaseConfig, SegConfig, TrainConfig
from pipelines.training.loop import Report, TrainResult
from pipelines.training.segment import train_segmentation

__all__ = ["TASKS", "Task", "task"]


@dataclass(frozen=True)
class Task:
    name: str
    config_class: type[BaseConfig]
    # train(cfg, data, *, report=..., resume_state=...): the plain trainer (no Ray)
    train: Callable[..., TrainResult]
    # prepare(data_dir, sweep.data, train_size, val_size, seed) -> a small picklable
    # spec: on the driver, decoded once per machine and the split checked
    prepare_data: Callable[[str | None, Any, int, int, int], Any]
    open_data: Callable[[Any], Any]  # spec -> the split, in the trial's process
    metric: str  # the default metric a sweep of this task optimises
    range_test: bool  # the LR range test (lr_find, --lr-range auto) runs on it
    test_split: bool  # --final retrains the winner and scores it on a test split

    def run_trial(self, config: dict, data: Any, *, report: Report | None,
                  resume_state: dict | None) -> TrainResult:
        """Validate `config` as this task's config and train it."""
        return self.train(self.config_class.from_dict(config), data, report=report,
                          resume_state=resume_state)


TASKS: dict[str, Task] = {
    "classification": Task("classification", TrainConfig, train, cifar10.prepare,
                           cifar10.open_split, metric="val_acc", range_test=True,
                           test_split=True),
    "segmentation": Task("segmentation", SegConfig, train_segmentation, seg_folder.prepare,
                         seg_folder.open_seg, metric="val_miou", range_test=False,
                         test_split=False),
}


def task(name: str) -> Task:
    """The task called `name`; a UsageError naming the known ones otherwise."""
    if name not in TASKS:
        raise UsageError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]
