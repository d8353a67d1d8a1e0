"""A sweep: the space, the budget and the defaults of one search, as one
object (`SWEEP`) in one module: `search_spaces/<name>.py` or the user's own file
(pipelines.search.sweep_loader finds and loads it)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping

from pipelines.data.seg_folder import SegDataset
from pipelines.errors import UsageError
from pipelines.records.tables import COST_COLUMNS
from pipelines.search.space import (
    Choice,
    Domain,
    IntUniform,
    LogUniform,
    candidate_values,
    check_space,
)
from pipelines.training.config import BaseConfig, TrainConfig
from pipelines.training.tasks import Task, task

if TYPE_CHECKING:
    from pipelines.data.images import ImageSource

MODES = ("max", "min")
FUNCTION_TASK = "function"  # run.json's task of a sweep with its own trainable
# Staged tuning's default order (the practitioners' one): a group's parameters are
# tuned together, with every earlier group fixed at its best.
DEFAULT_STAGE_ORDER = (
    ("lr", ("lr",)),
    ("batch_size", ("batch_size",)),
    ("optimizer", ("optimizer", "momentum", "nesterov")),
    ("schedule", ("schedule", "warmup_epochs", "label_smoothing")),
    ("architecture", ("model", "width", "depth")),
    ("regularisation", ("dropout", "weight_decay", "decoupled_wd", "crop_padding",
                        "flip_prob")),
)
# The carried configuration a trial of a stage builds on, when a stage carries
# more than one (top_k > 1): searched like any other parameter, never a config key.
CARRIED_KEY = "carried"


@dataclass(frozen=True)
class Budget:
    """How much to spend: trials, epochs, ASHA rungs and data size."""

    num_samples: int  # trials for random/optuna/hyperopt; repeats of the grid for grid
    max_epochs: int  # ASHA's max_t and every trial's schedule horizon
    grace_period: int = 1  # epochs before ASHA may stop a trial (Tune's ASHA default)
    reduction_factor: int = 4  # ASHA keeps 1 / reduction_factor at each rung (Tune's default)
    # images (stratified); None: every training image. Ignored by a sweep's own trainable.
    train_size: int | None = None
    # images for selection; None: the data's own validation split, else a stratified 10%
    val_size: int | None = None
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


def start_values(space: Mapping[str, Domain],
                 config_class: type | None = TrainConfig) -> dict[str, Any]:
    """Every parameter's value before a stage tunes it: the config class's default,
    or (a plain-dict config, or a field without a default) the domain's middle."""
    defaults = {f.name: f.default for f in dataclasses.fields(config_class)
                if f.default is not dataclasses.MISSING} \
        if config_class is not None and dataclasses.is_dataclass(config_class) else {}
    return {name: defaults[name] if name in defaults else middle(domain)
            for name, domain in space.items()}


def middle(domain: Domain) -> Any:
    """A domain's central value: a Choice's first option, a range's (geometric for a
    log domain) midpoint."""
    if isinstance(domain, Choice):
        return domain.options[0]
    log = isinstance(domain, LogUniform) or (isinstance(domain, IntUniform) and domain.log)
    mid = math.sqrt(domain.low * domain.high) if log else (domain.low + domain.high) / 2
    return round(mid) if isinstance(domain, IntUniform) else mid


def with_carried(config: dict[str, Any],
                 carried: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    """A stage trial's full configuration: the carried configuration it builds on
    (chosen by CARRIED_KEY when there are several), with its own values on top."""
    if not carried:
        return config
    own = dict(config)
    base = carried[own.pop(CARRIED_KEY, 0)]
    return {**base, **own}




# A sweep's own training function: fn(config, report, resume_state=None), where
# report(metrics, state=None) is called once per epoch (pipelines.training.function).
Trainable = Callable[..., Any]


@dataclass(frozen=True)
class Sweep:
    """One search: its space, budgets and defaults (metric, mode, algorithm), its
    stages if it tunes in stages, and what each trial runs: a built-in task on
    `data`, or the sweep's own `trainable`. Checked by `check()` before a run."""

    description: str  # one line, shown by --list
    space: Mapping[str, Domain]
    full: Budget | None = None  # the real search (without --quick)
    quick: Budget | None = None  # CPU-sized: --quick
    fixed: Mapping[str, Any] = field(default_factory=dict)  # config values for every trial
    # a metric the trainer reports, or a cost column (COST_COLUMNS); "": the task's
    # default (TASKS). Several objectives: a tuple, e.g. ("val_acc", "params"), with a
    # tuple of modes; early stopping and staged tuning follow the first.
    metric: str | tuple[str, ...] = ""
    mode: str | tuple[str, ...] = "max"  # max | min: which way the metric is better
    default_algo: str = "optuna"
    stages: tuple[Stage, ...] = ()  # staged tuning (see Stage); () = one joint search
    task: str = "classification"  # a key of pipelines.training.tasks.TASKS
    # classification: ImageFolder, ParquetImages or Cifar10 (None: CIFAR-10);
    # segmentation: a SegDataset; a sweep's own trainable: none
    data: ImageSource | SegDataset | None = None
    trainable: Trainable | None = None  # the sweep's own training function, instead of a task
    # the trainable's config: a dataclass built from each trial's values (None: a dict)
    config_class: type | None = None
    # {cost column: limit}: a trial above a limit is infeasible and never ranked; params
    # and peak_mem_mb are checked when it starts, before it trains (COST_COLUMNS)
    constraints: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.trainable is None and not self.metric:  # frozen: object's own __setattr__
            object.__setattr__(self, "metric", task(self.task).metric)
        if self.trainable is None and self.config_class is None:
            object.__setattr__(self, "config_class", task(self.task).config_class)

    @property
    def objectives(self) -> tuple[tuple[str, str], ...]:
        """(metric, mode) per objective, the first the one early stopping follows."""
        return tuple(zip(_names(self.metric), _names(self.mode)))

    @property
    def primary_metric(self) -> str:
        """The first objective: what ASHA, staged tuning and --confirm follow."""
        return self.metric if isinstance(self.metric, str) else self.metric[0]

    @property
    def primary_mode(self) -> str:
        return self.mode if isinstance(self.mode, str) else self.mode[0]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def runs_function(self) -> bool:
        """True when each trial runs the sweep's own trainable, not a built-in task."""
        return self.trainable is not None

    @property
    def task_name(self) -> str:
        """The task run.json records: a built-in task's name, or "function"."""
        return FUNCTION_TASK if self.runs_function else self.task

    def budget(self, quick: bool) -> Budget:
        """The budget of a quick or a full run; a UsageError if the sweep has none."""
        chosen, other = (self.quick, self.full) if quick else (self.full, self.quick)
        if chosen is not None:
            return chosen
        if other is None:
            raise UsageError("the sweep defines no budget; give it quick=Budget(...) and/or "
                             "full=Budget(...)")
        if quick:
            raise UsageError("the sweep defines no quick budget; run it without --quick, or "
                             "add quick=Budget(...)")
        raise UsageError("the sweep defines only a quick budget; run it with --quick, or add "
                         "full=Budget(...)")

    def horizon(self, budget: Budget, seed: int) -> dict[str, Any]:
        """Every trial's schedule horizon (`epochs`: the budget's max_epochs) and seed,
        where its config has those keys (a plain-dict config gets both)."""
        keys = self.config_keys()
        return {k: v for k, v in (("epochs", budget.max_epochs), ("seed", seed))
                if keys is None or k in keys}

    def config_keys(self) -> list[str] | None:
        """The keys a trial's config may have; None: any (a plain-dict trainable)."""
        cls = self.config_class
        if cls is None:
            return None
        if isinstance(cls, type) and issubclass(cls, BaseConfig):
            return cls.field_names()
        if not dataclasses.is_dataclass(cls):
            raise UsageError(f"config_class={cls!r} is not a dataclass; decorate it with "
                             f"@dataclass, or drop it to get a dict")
        return [f.name for f in dataclasses.fields(cls)]

    def check(self) -> None:
        """Every key known, every domain valid, and every value the space can take
        (options, grid points, bounds) a valid config with the fixed values."""
        self._check_kind()
        keys = self.config_keys()
        check_space(self.space, keys)
        budgets = [b for b in (self.full, self.quick) if b is not None]
        if not budgets:
            self.budget(quick=True)  # raises: no budget at all
        for budget in budgets:
            fixed = {**self.fixed, **budget.fixed}
            unknown = sorted(set(fixed) - set(keys)) if keys is not None else []
            if unknown:
                raise UsageError(f"fixed value(s) for unknown config key(s) {unknown}; "
                                 f"known keys: {', '.join(keys or ())}")
            both = sorted(set(fixed) & set(self.space))
            if both:
                raise UsageError(f"{both} both searched and fixed; drop them from the space "
                                 f"or from fixed={{...}}")
            if keys is None:
                continue
            # what a trial gets besides its own values: the budget's horizon, and (fields
            # without a default) every other parameter at its start value
            base = {**start_values(self.space, self.config_class),
                    **self.horizon(budget, seed=0), **fixed}
            self._check_config(base, "the fixed values")
            for name, domain in self.space.items():
                for value in candidate_values(domain):
                    self._check_config({**base, name: value},
                                       f"parameter {name!r} = {value!r}")
            self._check_model_keys(fixed)
        self._check_stages()

    def _check_model_keys(self, fixed: Mapping[str, Any]) -> None:
        """A searched or fixed model key (models.SWEPT_KEYS: width, depth, dropout,
        activation, fc_width) that the model's factory does not take would change
        nothing: an error, not a silent no-op."""
        from models import SWEPT_KEYS, model_keys

        keys = sorted(k for k in SWEPT_KEYS if k in self.space or k in fixed)
        if not keys or self.runs_function or self.config_class is None:
            return
        domain = self.space.get("model")
        names = candidate_values(domain) if domain is not None else \
            (fixed.get("model", getattr(self.config_class(), "model", None)),)
        for name in names:
            ignored = [k for k in keys if k not in model_keys(name, task(self.task).name)]
            if ignored:
                raise UsageError(f"model {name!r} takes no {', '.join(ignored)}, which the "
                                 f"sweep searches or fixes; drop {', '.join(ignored)} from the "
                                 f"sweep, or use a model whose factory takes it")

    def _check_kind(self) -> None:
        self._check_objectives()
        if not self.runs_function:
            self._check_data(task(self.task))  # task(): a UsageError naming the known ones
            self._check_reported(task(self.task))
            return
        if not callable(self.trainable):
            raise UsageError(f"trainable={self.trainable!r} is not a function; give "
                             f"def fn(config, report, resume_state=None)")
        if not self.metric:
            raise UsageError("a sweep with its own trainable names the metric it reports, "
                             "e.g. metric='val_loss', mode='min'")
        if self.data is not None:
            raise UsageError("a sweep with its own trainable loads its own data; drop data=")

    def _check_objectives(self) -> None:
        if not isinstance(self.metric, (str, tuple)) or not isinstance(self.mode, (str, tuple)):
            raise UsageError(f"metric={self.metric!r}, mode={self.mode!r}: give a name and a "
                             f"mode, or tuples of them, e.g. metric=('val_acc', 'params'), "
                             f"mode=('max', 'min')")
        metrics, modes = _names(self.metric), _names(self.mode)
        if len(metrics) != len(modes):
            raise UsageError(f"metric={self.metric!r} has {len(metrics)} objective(s) but "
                             f"mode={self.mode!r} {len(modes)}; give one mode per metric")
        if not all(isinstance(m, str) for m in metrics) or len(set(metrics)) != len(metrics):
            raise UsageError(f"metric={self.metric!r}: objectives are distinct names")
        if metrics[0] in COST_COLUMNS:
            raise UsageError(f"metric={self.metric!r}: the first objective is what early "
                             f"stopping follows epoch by epoch, and {metrics[0]!r} is a cost "
                             f"measured once per trial; put a metric first, e.g. "
                             f"metric=('val_acc', {metrics[0]!r})")
        bad = [m for m in modes if m not in MODES]
        if bad:
            raise UsageError(f"mode={self.mode!r}; use mode='max' or mode='min' (a tuple of "
                             f"them for several metrics)")
        unknown = sorted(set(self.constraints) - set(COST_COLUMNS))
        if unknown:
            raise UsageError(f"constraints on unknown column(s) {unknown}; constraints limit "
                             f"{', '.join(COST_COLUMNS)}")
        for name, limit in self.constraints.items():
            if isinstance(limit, bool) or not isinstance(limit, (int, float)) \
                    or not limit > 0 or not math.isfinite(limit):
                raise UsageError(f"constraints[{name!r}] = {limit!r}; a limit is a number > 0")

    def _check_reported(self, the_task: Task[Any, Any, Any, Any]) -> None:
        reported = (*the_task.reports, *COST_COLUMNS)
        unknown = [m for m, _ in self.objectives if m not in reported]
        if unknown:
            raise UsageError(f"objective(s) {unknown}: no {self.task} trial reports them; "
                             f"choose from {', '.join(reported)}")

    def _check_data(self, the_task: Task[Any, Any, Any, Any]) -> None:
        kind = the_task.data_type.__name__
        if self.data is None and the_task.data_required:
            raise UsageError(f"a {self.task} sweep needs its data: data={kind}(...)")
        if self.data is not None and not isinstance(self.data, the_task.data_type):
            raise UsageError(f"data={self.data!r} does not fit a {self.task} sweep, which "
                             f"trains on {kind} data")

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
            build_config(self.config_class, dict(values))
        except (TypeError, ValueError) as e:
            raise UsageError(f"{what}: {e}") from None


def _names(value: str | tuple[str, ...]) -> tuple[str, ...]:
    """A metric or mode as given (one name, or a tuple of them), as a tuple."""
    return (value,) if isinstance(value, str) else tuple(value)


def build_config(config_class: type | None, values: dict[str, Any]) -> Any:
    """A trial's config: `values` as a dict (no config class), through a task
    config's validating from_dict, or as the user's dataclass (an unknown key is a
    TypeError; its __post_init__ may validate more)."""
    if config_class is None:
        return dict(values)
    if isinstance(config_class, type) and issubclass(config_class, BaseConfig):
        return config_class.from_dict(values)
    if not dataclasses.is_dataclass(config_class):
        raise TypeError(f"config_class={config_class!r} is not a dataclass")
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown config key(s) {', '.join(unknown)} for "
                         f"{config_class.__name__}; its fields: {', '.join(sorted(known))}")
    return config_class(**values)
