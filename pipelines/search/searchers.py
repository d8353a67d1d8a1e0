"""Search algorithms by name: how the next trial's configuration is chosen."""

from __future__ import annotations

from typing import Callable

from ray.tune.search import BasicVariantGenerator, SearchAlgorithm, Searcher

# TPE and HyperOpt start with random points; on a small budget use half of it.
MAX_RANDOM_STARTUP = 10


def _variants(*, seed: int, num_samples: int, **_: str) -> BasicVariantGenerator:
    # Grid points expand to a cartesian product; plain domains are sampled at random.
    return BasicVariantGenerator(random_state=seed)


def _optuna(*, metric: str, mode: str, seed: int, num_samples: int) -> Searcher:
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not a line per study
    startup = max(2, min(MAX_RANDOM_STARTUP, num_samples // 2))
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    return OptunaSearch(metric=metric, mode=mode, sampler=sampler)


def _hyperopt(*, metric: str, mode: str, seed: int, num_samples: int) -> Searcher:
    from ray.tune.search.hyperopt import HyperOptSearch

    startup = max(2, min(MAX_RANDOM_STARTUP, num_samples // 2))
    return HyperOptSearch(metric=metric, mode=mode, random_state_seed=seed,
                          n_initial_points=startup)


SEARCHERS: dict[str, Callable[..., Searcher | SearchAlgorithm]] = {
    "grid": _variants, "random": _variants, "optuna": _optuna, "hyperopt": _hyperopt,
}


def build_searcher(algo: str, *, metric: str, mode: str, seed: int,
                   num_samples: int) -> Searcher | SearchAlgorithm:
    """The search algorithm called `algo` (a key of SEARCHERS), seeded."""
    return SEARCHERS[algo](metric=metric, mode=mode, seed=seed, num_samples=num_samples)
