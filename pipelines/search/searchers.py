"""Search algorithms by name: how the next trial's configuration is chosen.

One objective or several (`metric` and `mode` as lists): Optuna's samplers
(TPE, NSGA-II, the Gaussian process) take several and learn constraints
(each finished trial's `Trial.set_constraint`); random and grid ignore both.
Every searcher is timed: `suggest_seconds(trial_id)` is how long it took to
suggest a trial's config.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Mapping, Sequence

from ray.tune.search import BasicVariantGenerator, SearchAlgorithm, Searcher
from ray.tune.search.optuna import OptunaSearch

from pipelines.errors import UsageError

__all__ = ["MULTI_OBJECTIVE", "SEARCHERS", "build_searcher", "suggest_seconds"]

# TPE, GP and HyperOpt start with random points; on a small budget use half of it.
MAX_RANDOM_STARTUP = 10
NSGA2_MAX_POPULATION = 50  # NSGA-II's default generation size; smaller on a small budget

Metric = str | list[str]


def _startup(num_samples: int) -> int:
    return max(2, min(MAX_RANDOM_STARTUP, num_samples // 2))


def _variants(*, seed: int, num_samples: int, **_: Any) -> BasicVariantGenerator:
    # Grid points expand to a cartesian product; plain domains are sampled at random.
    return BasicVariantGenerator(random_state=seed)


class ConstrainedOptunaSearch(OptunaSearch):
    """Ray Tune's OptunaSearch that also tells Optuna each finished trial's
    constraint values (cost - limit; <= 0 feasible: Optuna's Trial.set_constraint),
    from which its samplers learn which region is infeasible. A cost the trial did
    not report counts as met."""

    def __init__(self, *, limits: Mapping[str, float], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limits = dict(limits)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        trial = self._ot_trials.get(trial_id)
        if trial is not None and result and self.limits:
            for name, limit in self.limits.items():
                trial.set_constraint(name, _excess(result.get(name), limit))
        super().on_trial_complete(trial_id, result, error)


def _excess(value: object, limit: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        return 0.0
    return float(value) - limit


def _optuna_search(sampler: Any, metric: Metric, mode: Metric,
                   limits: Mapping[str, float]) -> Searcher:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per study
    return ConstrainedOptunaSearch(metric=metric, mode=mode, sampler=sampler, limits=limits)


def _optuna(*, metric: Metric, mode: Metric, seed: int, num_samples: int,
            limits: Mapping[str, float]) -> Searcher:
    import optuna

    # several objectives: Optuna's TPE is multi-objective as it is (MOTPE)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=_startup(num_samples))
    return _optuna_search(sampler, metric, mode, limits)


def _nsga2(*, metric: Metric, mode: Metric, seed: int, num_samples: int,
           limits: Mapping[str, float]) -> Searcher:
    import optuna

    population = max(4, min(NSGA2_MAX_POPULATION, num_samples // 4))
    sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    return _optuna_search(sampler, metric, mode, limits)


def _gp(*, metric: Metric, mode: Metric, seed: int, num_samples: int,
        limits: Mapping[str, float]) -> Searcher:
    import optuna

    # Gaussian-process Bayesian optimisation: each suggestion fits the GP to every
    # trial so far (cubic in the trials; see bench/searcher_overhead.py)
    sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials=_startup(num_samples))
    return _optuna_search(sampler, metric, mode, limits)


def _hyperopt(*, metric: Metric, mode: Metric, seed: int, num_samples: int,
              limits: Mapping[str, float]) -> Searcher:
    from ray.tune.search.hyperopt import HyperOptSearch

    assert isinstance(metric, str) and isinstance(mode, str), "HyperOpt: one objective"
    return HyperOptSearch(metric=metric, mode=mode, random_state_seed=seed,
                          n_initial_points=_startup(num_samples))


SEARCHERS: dict[str, Callable[..., Searcher | SearchAlgorithm]] = {
    "grid": _variants, "random": _variants, "optuna": _optuna, "nsga2": _nsga2, "gp": _gp,
    "hyperopt": _hyperopt,
}
# the algorithms that search several objectives (random and grid ignore the objectives)
MULTI_OBJECTIVE = ("grid", "random", "optuna", "nsga2", "gp")

_SUGGEST_S: dict[str, float] = {}  # trial id -> seconds; taken by suggest_seconds()


class TimedSearcher(Searcher):
    """A searcher that records how long each suggestion took (for trials.parquet's
    suggest_s), and otherwise is the searcher it wraps."""

    def __init__(self, searcher: Searcher) -> None:
        self.searcher = searcher
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict,
                              **spec: Any) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.searcher.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id: str) -> dict | None:
        start = time.perf_counter()
        config = self.searcher.suggest(trial_id)
        if isinstance(config, dict):
            _SUGGEST_S[trial_id] = time.perf_counter() - start
        return config

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        self.searcher.on_trial_complete(trial_id, result, error)

    def add_evaluated_point(self, *args: Any, **kwargs: Any) -> None:
        self.searcher.add_evaluated_point(*args, **kwargs)

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)

    # A wrapper's own state (Tune's SearchGenerator saves the wrapped searcher itself,
    # as it does under a ConcurrencyLimiter): the times are not worth keeping.
    def get_state(self) -> dict:
        return {}

    def set_state(self, state: dict) -> None:
        pass

    @property
    def metric(self) -> Any:
        return self.searcher.metric

    @property
    def mode(self) -> Any:
        return self.searcher.mode


def suggest_seconds(trial_id: str) -> float | None:
    """How long the searcher took to suggest the trial's configuration (once: the
    entry is taken); None for a trial it did not suggest in this process."""
    return _SUGGEST_S.pop(trial_id, None)


def build_searcher(algo: str, *, metric: str | Sequence[str], mode: str | Sequence[str],
                   seed: int, num_samples: int, limits: Mapping[str, float] | None = None
                   ) -> Searcher | SearchAlgorithm:
    """The search algorithm called `algo` (a key of SEARCHERS), seeded, timed; several
    objectives when `metric` and `mode` are sequences; `limits` ({cost: limit}) are
    constraints the Optuna samplers learn."""
    several = not isinstance(metric, str)
    if several and algo not in MULTI_OBJECTIVE:
        raise UsageError(f"--algo {algo} searches one objective; for several use one of "
                         f"{', '.join(MULTI_OBJECTIVE)}")
    searcher = SEARCHERS[algo](metric=list(metric) if several else metric,
                               mode=list(mode) if several else mode, seed=seed,
                               num_samples=num_samples, limits=dict(limits or {}))
    return TimedSearcher(searcher) if isinstance(searcher, Searcher) else searcher
