"""Running a sweep on Ray Tune: the plan (validated options), Ray's start and
stop, one Tune experiment or a staged run, the trainable, the driver-side
recorder and progress, --resume's checks, --lr-range auto and --final."""

from typing import TYPE_CHECKING

from pipelines.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.tuning.final_score import (
        EPOCHS_FROM,
        FinalOptions,
        final,
        final_test_images,
        final_training_images,
    )
    from pipelines.tuning.ray_session import start_ray, stop_ray
    from pipelines.tuning.run_plan import RunOptions, RunPlan, plan
    from pipelines.tuning.runner import resume, run

__all__ = [
    "EPOCHS_FROM", "FinalOptions", "RunOptions", "RunPlan", "final", "final_test_images",
    "final_training_images", "plan", "resume", "run", "start_ray", "stop_ray",
]

__getattr__, __dir__ = lazy_exports(__name__)  # the names above load on first use
