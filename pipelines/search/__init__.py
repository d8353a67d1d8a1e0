"""What a sweep searches and how: the backend-neutral space (domains), the
sweep and its budgets and stages, and the searchers and trial schedulers by
name."""

from typing import TYPE_CHECKING

from pipelines.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from pipelines.search.searchers import (
        MULTI_OBJECTIVE,
        OWN_STUDY,
        SEARCHERS,
        ConstrainedOptunaSearch,
        build_searcher,
        suggest_seconds,
    )
    from pipelines.search.space import (
        Choice,
        Domain,
        IntUniform,
        LogUniform,
        Uniform,
        candidate_values,
        compile_space,
        describe,
        grid_points,
        grid_size,
        to_tune,
    )
    from pipelines.search.sweep import (
        CARRIED_KEY,
        FUNCTION_TASK,
        Budget,
        Stage,
        Sweep,
        Trainable,
        build_config,
        default_stages,
        start_values,
        with_carried,
    )
    from pipelines.search.sweep_loader import (
        SweepRef,
        find_sweep,
        import_sweep,
        is_file_argument,
        load_sweep,
        sweep_name,
        sweep_names,
    )
    from pipelines.search.trial_schedulers import SCHEDULERS, TIME_ATTR, build_scheduler
    from pipelines.search.warm_start import WARM_START_ALGOS, WarmStart, load_warm_start

__all__ = [
    "CARRIED_KEY", "FUNCTION_TASK", "MULTI_OBJECTIVE", "OWN_STUDY", "TIME_ATTR", "Trainable",
    "ConstrainedOptunaSearch", "WARM_START_ALGOS", "WarmStart", "load_warm_start",
    "candidate_values", "suggest_seconds",
    "SCHEDULERS", "SEARCHERS", "Budget", "Choice", "Domain", "IntUniform", "LogUniform", "Stage",
    "Sweep", "SweepRef", "Uniform", "build_config", "build_scheduler", "build_searcher",
    "compile_space", "default_stages", "describe", "find_sweep", "grid_points", "grid_size",
    "import_sweep", "is_file_argument", "load_sweep", "start_values", "sweep_name", "sweep_names",
    "to_tune", "with_carried",
]

__getattr__, __dir__ = lazy_exports(__name__)  # the names above load on first use
