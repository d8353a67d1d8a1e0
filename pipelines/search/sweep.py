"""A sweep: the space, the budget and the defaults of one search, as one
object in one `search_spaces/<name>.py` module (the module name is its CLI
name, the object is called `SWEEP`)."""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from pipelines.data.seg_folder import SegDataset
from pipelines.errors import UsageError
from pipelines.search.space import Domain, candidate_values, check_space
from pipelines.training.config import BaseConfig, TrainConfig
from pipelines.training.tasks import task

SWEEP_PACKAGE = "search_spaces"
# Staged tuning's default order (the practitioners' one): a group's parameters are
# tuned together, with every earlier group fixed at its best.
DEFAULT_STAGE_ORDER = (
    ("lr", ("lr",)),
    ("batch_size", ("batch_size",)),
    ("optimizer", ("optimizer", "momentum", "nesterov")),
    ("schedule", ("schedule", "warmup_epochs", "label_smoothing")),
    ("architecture", ("model", "width", "depth")),
    ("regularisation", ("dropout", "weight_decay", "crop_padding", "flip_prob")),
)
# The carried configuration a trial of a stage builds on, when a stage carries
# more than one (top_k > 1): searched like any other parameter, never a config key.
CARRIED_KEY = "carried"


@dataclass(frozen=True)
class Budget:
    """How much to spend: trials, epochs, ASHA rungs and data size."""

    num_samples: int  # trials for random/optuna/hyperopt; repeats of the grid for grid
    max_epochs: int  # ASHA's max_t and every trial's schedule horizon
    grace_period: int  # epochs before ASHA may stop a trial
    reduction_factor: int  # ASHA keeps 1 / reduction_factor at each rung
    train_size: int  # images, stratified from the 50,000 training images
    val_size: int  # images, held out of the training images for selection
    fixed: Mapping[str, Any] = field(default_factory=dict)  # config values for this budget


@dataclass(frozen=True)
class Stage:
    """One step of staged tuning: search `params` (keys of the sweep's space) with
    the earlier stages' best values fixed; parameters not yet tuned keep their
    TrainConfig defaults. A parameter may come back in a later stage (e.g. lr
    again after the optimizer changed)."""

    name: str
    params: tuple[str, ...]
    num_samples: int  # trials with the full budget (grid: passes over the grid)
    quick_num_samples: int  # with --quick
    algo: str | None = None  # None: --algo, else the sweep's default_algo
    top_k: int = 1  # best configurations so far carried into the next stage

    def check(self, space: Mapping[str, Domain]) -> None:
        where = f"stage {self.name!r}"
        if not self.name.isidentifier():
            raise UsageError(f"{where}: a stage name must be an identifier (it names a "
                             f"directory), e.g. 'batch_size'")
        if not self.params:
            raise UsageError(f"{where} searches no parameter; give it params=(...)")
        unknown = [p for p in self.params if p not in space]
        if unknown:
            raise UsageError(f"{where}: {unknown} not in the sweep's space; stages search "
                             f"keys of the space: {', '.join(space)}")
        if min(self.num_samples, self.quick_num_samples, self.top_k) < 1:
            raise UsageError(f"{where}: num_samples, quick_num_samples and top_k must be >= 1")
        from pipelines.search.searchers import SEARCHERS

        if self.algo is not None and self.algo not in SEARCHERS:
            raise UsageError(f"{where}: unknown algo {self.algo!r}; choose one of "
                             f"{', '.join(SEARCHERS)}")


def default_stages(space: Mapping[str, Domain], num_samples: int,
                   quick_num_samples: int) -> tuple[Stage, ...]:
    """Stages in DEFAULT_STAGE_ORDER over the parameters `space` has, each with the
    same number of trials."""
    stages = tuple(Stage(name, tuple(p for p in group if p in space), num_samples,
                         quick_num_samples)
                   for name, group in DEFAULT_STAGE_ORDER if any(p in space for p in group))
    grouped = {p for stage in stages for p in stage.params}
    return stages + ((Stage("other", tuple(p for p in space if p not in grouped),
                            num_samples, quick_num_samples),)
                     if set(space) - grouped else ())


def start_values(space: Iterable[str],
                 config_class: type[BaseConfig] = TrainConfig) -> dict[str, Any]:
    """Every parameter's (of `space`, by name) value before a stage tunes it: the
    trainer's default."""
    defaults = config_class()
    return {name: getattr(defaults, name) for name in space}


def with_carried(config: dict[str, Any],
                 carried: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """A stage trial's full configuration: the carried configuration it builds on
    (chosen by CARRIED_KEY when there are several), with its own values on top."""
    if not carried:
        return config
    own = dict(config)
    base = carried[own.pop(CARRIED_KEY, 0)]
    return {**base, **own}


@dataclass(frozen=True)
class Sweep:
    """One search: its space, budgets and defaults (metric, mode, algorithm), its
    stages if it tunes in stages, and the task and data it trains on. Checked by
    `check()` before a run starts."""

    description: str  # one line, shown by --list
    space: Mapping[str, Domain]
    full: Budget
    quick: Budget  # CPU-sized: --quick
    fixed: Mapping[str, Any] = field(default_factory=dict)  # config values for every trial
    metric: str = ""  # a metric the trainer reports; "": the task's default (TASKS)
    mode: str = "max"
    default_algo: str = "optuna"
    stages: tuple[Stage, ...] = ()  # staged tuning (see Stage); () = one joint search
    task: str = "classification"  # a key of pipelines.training.tasks.TASKS
    data: SegDataset | None = None  # segmentation: the folder; classification: CIFAR-10

    def __post_init__(self) -> None:
        if not self.metric:  # frozen: set through object's own __setattr__
            object.__setattr__(self, "metric", task(self.task).metric)

    @property
    def config_class(self) -> type[BaseConfig]:
        return task(self.task).config_class

    def check(self) -> None:
        """Every key known, every domain valid, and every value the space can take
        (options, grid points, bounds) a valid config with the fixed values."""
        keys = self.config_class.field_names()
        check_space(self.space, keys)
        for budget in (self.full, self.quick):
            fixed = {**self.fixed, **budget.fixed}
            unknown = sorted(set(fixed) - set(keys))
            if unknown:
                raise UsageError(f"fixed value(s) for unknown config key(s) {unknown}; "
                                 f"known keys: {', '.join(keys)}")
            both = sorted(set(fixed) & set(self.space))
            if both:
                raise UsageError(f"{both} both searched and fixed; drop them from the space "
                                 f"or from fixed={{...}}")
            self._check_config(fixed, "the fixed values")
            for name, domain in self.space.items():
                for value in candidate_values(domain):
                    self._check_config({**fixed, name: value},
                                       f"parameter {name!r} = {value!r}")
        self._check_stages()

    def _check_stages(self) -> None:
        for stage in self.stages:
            stage.check(self.space)
        names = [stage.name for stage in self.stages]
        if len(set(names)) != len(names):
            raise UsageError(f"stage names must be unique, got {names}")
        if not self.stages:
            return
        untuned = [p for p in self.space if not any(p in s.params for s in self.stages)]
        if untuned:
            raise UsageError(f"parameter(s) {untuned} are in no stage; add them to one, or "
                             f"fix them in fixed={{...}}")

    def _check_config(self, values: Mapping[str, Any], what: str) -> None:
        try:
            self.config_class.from_dict(dict(values))
        except (TypeError, ValueError) as e:
            raise UsageError(f"{what}: {e}") from None


def sweep_names() -> list[str]:
    """The sweeps, by CLI name: the modules of search_spaces/."""
    package = importlib.import_module(SWEEP_PACKAGE)
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__)
                  if not m.name.startswith("_"))


def load_sweep(name: str) -> Sweep:
    """search_spaces/<name>.py's SWEEP, checked; a UsageError naming the known ones."""
    if name not in sweep_names():
        raise UsageError(f"unknown sweep {name!r}; known sweeps: {', '.join(sweep_names())} "
                         f"(see --list)")
    sweep = getattr(importlib.import_module(f"{SWEEP_PACKAGE}.{name}"), "SWEEP", None)
    if not isinstance(sweep, Sweep):
        raise UsageError(f"search_spaces/{name}.py defines no SWEEP = Sweep(...)")
    sweep.check()
    return sweep
