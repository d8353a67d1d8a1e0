"""Training a configuration, without Ray: the validated configs, optimizers and
LR schedules by name, batched augmentation, the shared epoch loop, the
classification and segmentation trainers, a sweep's own training function
under the same report contract, and the table of tasks."""

from typing import TYPE_CHECKING

from pipelines.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.training.augmentation import augment
    from pipelines.training.classify import batches, build_classifier, evaluate, train
    from pipelines.training.config import BaseConfig, SegConfig, TrainConfig
    from pipelines.training.function import EPOCH_KEY, NoMetricReported, run_function
    from pipelines.training.loop import (
        LOSS_WINDOWS,
        EpochStats,
        Metrics,
        Report,
        State,
        TrainResult,
        default_device,
        fit,
    )
    from pipelines.training.lr_schedules import SCHEDULES, LRSchedule, build_schedule
    from pipelines.training.optim import OPTIMIZERS, build_optimizer, effective_lr
    from pipelines.training.segment import evaluate_segmentation, train_segmentation
    from pipelines.training.tasks import TASKS, Task, task

__all__ = [
    "EPOCH_KEY", "LOSS_WINDOWS", "NoMetricReported", "augment", "batches", "build_classifier",
    "run_function",
    "OPTIMIZERS", "SCHEDULES", "TASKS", "BaseConfig", "EpochStats", "LRSchedule", "Metrics",
    "Report", "SegConfig", "State", "Task", "TrainConfig", "TrainResult", "build_optimizer",
    "build_schedule", "default_device", "effective_lr", "evaluate", "evaluate_segmentation",
    "fit", "task", "train", "train_segmentation",
]

__getattr__, __dir__ = lazy_exports(__name__)  # the names above load on first use
