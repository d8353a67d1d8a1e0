"""The tasks a sweep can run, by name: each is one entry of config class,
trainer, data (prepared on the driver, opened in the trial) and the
capabilities the tools around it need. Code looks a task up here rather than
branching on its name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Generic, Protocol, TypeVar

from pipelines.data import images, seg_folder
from pipelines.errors import UsageError
from pipelines.training.classify import train
from pipelines.training.config import BaseConfig, SegConfig, TrainConfig
from pipelines.training.loop import Report, State, TrainResult
from pipelines.training.segment import train_segmentation

__all__ = ["TASKS", "Task", "task"]

ConfigT = TypeVar("ConfigT", bound=BaseConfig)  # the task's config class
SourceT = TypeVar("SourceT")  # a sweep's `data`: an ImageSource (None: CIFAR-10), a SegDataset
SpecT = TypeVar("SpecT")  # the small picklable spec that travels to the trials
DataT = TypeVar("DataT")  # the opened split the trainer reads
_Cfg = TypeVar("_Cfg", bound=BaseConfig, contravariant=True)
_Data = TypeVar("_Data", contravariant=True)


class Trainer(Protocol[_Cfg, _Data]):
    """train(cfg, data, *, report, resume_state): a task's plain trainer (no Ray)."""

    def __call__(self, cfg: _Cfg, data: _Data, /, *, report: Report | None,
                 resume_state: State | None) -> TrainResult: ...


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

    def run_trial(self, config: dict[str, Any], data: DataT, *, report: Report | None,
                  resume_state: State | None) -> TrainResult:
        """Validate `config` as this task's config and train it."""
        return self.train(self.config_class.from_dict(config), data, report=report,
                          resume_state=resume_state)


# Each entry is built on its own, so that mypy checks its parts against each other (inside
# the table's annotation it would not); the table mixes tasks of different types: Any.
CLASSIFICATION = Task("classification", TrainConfig, train, images.prepare, images.open_split,
                      data_type=images.ImageSource, data_required=False, metric="val_acc",
                      range_test=True, test_split=True)
SEGMENTATION = Task("segmentation", SegConfig, train_segmentation, seg_folder.prepare,
                    seg_folder.open_seg, data_type=seg_folder.SegDataset, data_required=True,
                    metric="val_miou", range_test=False, test_split=False)
TASKS: dict[str, Task[Any, Any, Any, Any]] = {t.name: t for t in (CLASSIFICATION, SEGMENTATION)}


def task(name: str) -> Task[Any, Any, Any, Any]:
    """The task called `name`; a UsageError naming the known ones otherwise."""
    if name not in TASKS:
        raise UsageError(f"unknown task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]
