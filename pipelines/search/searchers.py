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
from typing import Any, Callable, Mapping, Protocol, Sequence

from ray.tune.search import BasicVariantGenerator, SearchAlgorithm, Searcher
from ray.tune.search.optuna import OptunaSearch

from pipelines.errors import UsageError
from pipelines.records.tables import COST_COLUMNS

__all__ = ["MULTI_OBJECTIVE", "OWN_STUDY", "SEARCHERS", "WARM_START_ATTR",
           "ConstrainedOptunaSearch", "StudyStore", "build_searcher", "suggest_seconds"]

# TPE, GP and HyperOpt start with random points; on a small budget use half of it.
MAX_RANDOM_STARTUP = 10
NSGA2_MAX_POPULATION = 50  # NSGA-II's default generation size; smaller on a small budget

Metric = str | list[str]


def _startup(num_samples: int) -> int:
    return max(2, min(MAX_RANDOM_STARTUP, num_samples // 2))


def _variants(*, seed: int, num_samples: int, **_: Any) -> BasicVariantGenerator:
    # Grid points expand to a cartesian product; plain domains are sampled at random.
    return BasicVariantGenerator(random_state=seed)


class WarmStart(Protocol):
    """An earlier run's trials as evaluated points (pipelines.search.warm_start's
    WarmStart): each point's searched values, its objective value(s), and the run."""

    @property
    def source(self) -> str: ...

    @property
    def points(self) -> list[dict[str, Any]]: ...

    @property
    def rewards(self) -> list[Any]: ...


class StudyStore(Protocol):
    """Where an Optuna searcher keeps its study (pipelines.tuning.study_journal's
    StudyJournal): its storage, opened on demand, and the study's name in it."""

    @property
    def study_name(self) -> str: ...

    def storage(self) -> Any: ...


class ConstrainedOptunaSearch(OptunaSearch):
    """Ray Tune's OptunaSearch that also tells Optuna each finished trial's
    constraint values (cost - limit; <= 0 feasible: Optuna's Trial.set_constraint),
    from which its samplers learn which region is infeasible (a cost the trial did
    not report counts as met); tells each trial's best epoch, not its last, as its
    value (an epoch metric's best, as trials.parquet's best_ columns; a cost as
    reported last); starts from a warm start's trials (`study.add_trials`); and
    keeps its study in `journal` if given (a file optuna-dashboard reads live),
    continued, not duplicated, when the run resumes."""

    def __init__(self, *, limits: Mapping[str, float], journal: StudyStore | None = None,
                 warm_start: WarmStart | None = None, **kwargs: Any) -> None:
        super().__init__(study_name=journal.study_name if journal else None, **kwargs)
        self.limits = dict(limits)
        self.journal = journal
        self.warm_start = warm_start
        self._best: dict[str, dict[str, float]] = {}  # running trial -> {metric: best so far}
        self._finished_before: set[str] = set()  # trials the journal had ended at a restore

    def _setup_study(self, mode: str | list[str]) -> None:
        if self.journal is not None and self._storage is None:
            self._storage = self.journal.storage()
        super()._setup_study(mode)
        self._add_warm_start()

    def _add_warm_start(self) -> None:
        """The warm start's trials, as finished trials of the study (once: a study
        continued on a resume has them already)."""
        import optuna

        warm = self.warm_start
        if not warm or not warm.points:
            return
        assert self._ot_study is not None and isinstance(self._space, dict)
        if any(WARM_START_ATTR in t.user_attrs for t in self._ot_study.get_trials(deepcopy=False)):
            return
        trials = []
        for point, reward in zip(warm.points, warm.rewards):
            values = list(reward) if isinstance(reward, (list, tuple)) else [reward]
            try:
                trials.append(optuna.trial.create_trial(
                    params=dict(point), distributions=dict(self._space), values=values,
                    user_attrs={WARM_START_ATTR: warm.source}))
            except ValueError:  # outside the domain as Optuna sees it
                continue
        self._ot_study.add_trials(trials)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._finished_before:
            return
        self._keep_best(trial_id, result)
        super().on_trial_result(trial_id, result)

    def _keep_best(self, trial_id: str, result: dict) -> None:
        if "epoch" not in result:
            return
        best = self._best.setdefault(trial_id, {})
        for metric, mode in zip(_listed(self.metric), _listed(self.mode)):
            value = result.get(metric)
            if metric in COST_COLUMNS or not _is_score(value):
                continue
            assert isinstance(value, (int, float))
            if metric not in best or (value > best[metric] if mode == "max"
                                      else value < best[metric]):
                best[metric] = float(value)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if result:  # Tune hands a trial's last result to this, not to on_trial_result
            self._keep_best(trial_id, result)
        best = self._best.pop(trial_id, {})
        if trial_id in self._finished_before:
            return
        trial = self._ot_trials.get(trial_id)
        if trial is not None:  # the study's trial, found from trials.parquet's
            trial.set_user_attr("trial_id", trial_id)
        if trial is not None and result and self.limits:
            for name, limit in self.limits.items():
                trial.set_constraint(name, _excess(result.get(name), limit))
        if result and best:
            result = {**result, **best}
        super().on_trial_complete(trial_id, result, error)

    def restore(self, checkpoint_path: str) -> None:
        journal = self.journal  # this driver's: the run directory may have moved
        super().restore(checkpoint_path)
        self.journal = journal
        if journal is not None and self._ot_study is not None:
            self._continue_study(journal)

    def _continue_study(self, journal: StudyStore) -> None:
        """The study as the journal has it (it went on after the snapshot Tune restores
        from): this searcher's trials re-pointed at it; trials the journal finished
        are not told again; trials asked for after the snapshot, which Tune never
        started, failed."""
        import optuna
        from optuna.trial import TrialState

        assert self._ot_study is not None
        self._storage = journal.storage()
        self._ot_study = optuna.load_study(study_name=journal.study_name, storage=self._storage,
                                           sampler=self._ot_study.sampler,
                                           pruner=self._ot_study.pruner)
        states = {t._trial_id: t.state for t in self._ot_study.get_trials(deepcopy=False)}
        known = set()
        for trial_id, trial in self._ot_trials.items():
            trial.study, trial.storage = self._ot_study, self._storage
            known.add(trial._trial_id)
            if trial_id not in self._completed_trials and \
                    states.get(trial._trial_id, TrialState.RUNNING).is_finished():
                self._finished_before.add(trial_id)
        for number, state in states.items():
            if state == TrialState.RUNNING and number not in known:
                self._storage.set_trial_state_values(number, TrialState.FAIL)


WARM_START_ATTR = "warm_start"  # a warm start's trial in the study: the run it came from


def _listed(value: Any) -> list[str]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _is_score(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


def _excess(value: object, limit: float) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
        return 0.0
    return float(value) - limit


def _optuna_search(sampler: Any, metric: Metric, mode: Metric, limits: Mapping[str, float],
                   warm_start: WarmStart | None, journal: StudyStore | None) -> Searcher:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per study
    return ConstrainedOptunaSearch(metric=metric, mode=mode, sampler=sampler, limits=limits,
                                   warm_start=warm_start, journal=journal)


def _optuna(*, metric: Metric, mode: Metric, seed: int, num_samples: int,
            limits: Mapping[str, float], warm_start: WarmStart | None = None,
            journal: StudyStore | None = None) -> Searcher:
    import optuna

    # several objectives: Optuna's TPE is multi-objective as it is (MOTPE)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=_startup(num_samples))
    return _optuna_search(sampler, metric, mode, limits, warm_start, journal)


def _nsga2(*, metric: Metric, mode: Metric, seed: int, num_samples: int,
           limits: Mapping[str, float], warm_start: WarmStart | None = None,
           journal: StudyStore | None = None) -> Searcher:
    import optuna

    population = max(4, min(NSGA2_MAX_POPULATION, num_samples // 4))
    sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    return _optuna_search(sampler, metric, mode, limits, warm_start, journal)


def _gp(*, metric: Metric, mode: Metric, seed: int, num_samples: int,
        limits: Mapping[str, float], warm_start: WarmStart | None = None,
        journal: StudyStore | None = None) -> Searcher:
    import optuna

    # Gaussian-process Bayesian optimisation: each suggestion fits the GP to every
    # trial so far (cubic in the trials; see bench/searcher_overhead.py)
    sampler = optuna.samplers.GPSampler(seed=seed, n_startup_trials=_startup(num_samples))
    return _optuna_search(sampler, metric, mode, limits, warm_start, journal)


def _hyperopt(*, metric: Metric, mode: Metric, seed: int, num_samples: int,
              limits: Mapping[str, float], warm_start: WarmStart | None = None,
              **_: Any) -> Searcher:
    from ray.tune.search.hyperopt import HyperOptSearch

    assert isinstance(metric, str) and isinstance(mode, str), "HyperOpt: one objective"
    warm = warm_start if warm_start and warm_start.points else None
    searcher = HyperOptSearch(metric=metric, mode=mode, random_state_seed=seed,
                              n_initial_points=_startup(num_samples),
                              points_to_evaluate=warm.points if warm else None)
    return WarmStartedSearcher(searcher, warm) if warm else searcher


class DelegatingSearcher(Searcher):
    """A searcher that is the searcher it wraps: every call is passed on. Subclasses
    override what they add. Its own state is none: Tune's SearchGenerator saves the
    wrapped searcher itself, as it does under a ConcurrencyLimiter."""

    def __init__(self, searcher: Searcher) -> None:
        self.searcher = searcher
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict,
                              **spec: Any) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.searcher.set_max_concurrency(max_concurrent)

    def suggest(self, trial_id: str) -> dict | None:
        return self.searcher.suggest(trial_id)

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


class WarmStartedSearcher(DelegatingSearcher):
    """A Ray searcher built with a warm start's points as its `points_to_evaluate`,
    told their rewards as soon as it has its space, so none runs again: each is
    suggested and completed at once, before the first trial's suggestion (Ray
    2.60's HyperOptSearch takes no `evaluated_rewards`; the points count towards
    its random start-up). Otherwise it is the searcher it wraps."""

    def __init__(self, searcher: Searcher, warm_start: WarmStart) -> None:
        super().__init__(searcher)
        self.warm_start = warm_start

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict,
                              **spec: Any) -> bool:
        if not self.searcher.set_search_properties(metric, mode, config, **spec):
            return False
        for i, (point, reward) in enumerate(zip(self.warm_start.points,
                                                self.warm_start.rewards)):
            trial_id = f"{WARM_START_ATTR}_{i}"
            suggested = self.searcher.suggest(trial_id) or {}
            if {k: suggested.get(k) for k in point} != point:
                raise RuntimeError(f"warm start: the searcher suggested {suggested} for the "
                                   f"point {point}")
            self.searcher.on_trial_complete(trial_id, {self.searcher.metric: reward})
        return True


SEARCHERS: dict[str, Callable[..., Searcher | SearchAlgorithm]] = {
    "grid": _variants, "random": _variants, "optuna": _optuna, "nsga2": _nsga2, "gp": _gp,
    "hyperopt": _hyperopt,
}
# the algorithms whose searcher keeps an Optuna study of its own (in the run's journal)
OWN_STUDY = ("optuna", "nsga2", "gp")
# the algorithms that search several objectives (random and grid ignore the objectives)
MULTI_OBJECTIVE = ("grid", "random", "optuna", "nsga2", "gp")

_SUGGEST_S: dict[str, float] = {}  # trial id -> seconds; taken by suggest_seconds()


class TimedSearcher(DelegatingSearcher):
    """A searcher that records how long each suggestion took (for trials.parquet's
    suggest_s), and otherwise is the searcher it wraps."""

    def suggest(self, trial_id: str) -> dict | None:
        start = time.perf_counter()
        config = self.searcher.suggest(trial_id)
        if isinstance(config, dict):
            _SUGGEST_S[trial_id] = time.perf_counter() - start
        return config


def suggest_seconds(trial_id: str) -> float | None:
    """How long the searcher took to suggest the trial's configuration (once: the
    entry is taken); None for a trial it did not suggest in this process."""
    return _SUGGEST_S.pop(trial_id, None)


def build_searcher(algo: str, *, metric: str | Sequence[str], mode: str | Sequence[str],
                   seed: int, num_samples: int, limits: Mapping[str, float] | None = None,
                   warm_start: WarmStart | None = None, journal: StudyStore | None = None
                   ) -> Searcher | SearchAlgorithm:
    """The search algorithm called `algo` (a key of SEARCHERS), seeded, timed; several
    objectives when `metric` and `mode` are sequences; `limits` ({cost: limit}) are
    constraints the Optuna samplers learn; `warm_start`: an earlier run's trials it
    starts from; `journal`: where an Optuna searcher keeps its study (OWN_STUDY)."""
    several = not isinstance(metric, str)
    if several and algo not in MULTI_OBJECTIVE:
        raise UsageError(f"--algo {algo} searches one objective; for several use one of "
                         f"{', '.join(MULTI_OBJECTIVE)}")
    searcher = SEARCHERS[algo](metric=list(metric) if several else metric,
                               mode=list(mode) if several else mode, seed=seed,
                               num_samples=num_samples, limits=dict(limits or {}),
                               warm_start=warm_start, journal=journal)
    return TimedSearcher(searcher) if isinstance(searcher, Searcher) else searcher
