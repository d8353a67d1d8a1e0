"""Searcher overhead: how long Optuna's TPE, its Gaussian process (--algo gp) and
HyperOpt take to suggest the next trial once 100 and 300 trials have completed,
on cifar_sweep's space.

    python -m bench.searcher_overhead [--at 100 300] [--probe 20] [--algos optuna gp]

The searchers are built as a run builds them (pipelines.search.searchers), fed
synthetic scores without training or Ray. At each checkpoint the next `--probe`
suggestions are timed (each is completed at once, as a real trial would be later)
and the mean is reported. The time is the one a run records per trial in
trials.parquet's suggest_s (searchers.suggest_seconds), not a separate stopwatch.
"""

from __future__ import annotations

import argparse

import numpy as np
from ray.tune.search import Searcher

from pipelines.search.searchers import build_searcher, suggest_seconds
from pipelines.search.space import to_tune
from pipelines.search.sweep_loader import load_sweep

METRIC, MODE = "val_acc", "max"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.searcher_overhead",
                                description=__doc__.splitlines()[0])
    p.add_argument("--at", type=int, nargs="+", default=[100, 300])
    p.add_argument("--probe", type=int, default=20)
    p.add_argument("--algos", nargs="+", default=["optuna", "gp", "hyperopt"])
    return p.parse_args(argv)


def _score(config: dict, rng: np.random.Generator) -> float:
    """A smooth synthetic score with noise: best near lr 0.05, width 32."""
    return float(0.6 - 0.05 * np.log10(config["lr"] / 0.05) ** 2
                 + 0.02 * (config["width"] == 32) + rng.normal(0, 0.01))


def suggestion_times(algo: str, at: list[int], probe: int) -> dict[int, float]:
    sweep = load_sweep("cifar_sweep")
    space = to_tune(sweep.space, algo, {})
    searcher = build_searcher(algo, metric=METRIC, mode=MODE, seed=0, num_samples=max(at))
    assert isinstance(searcher, Searcher), f"{algo} suggests no configurations one by one"
    searcher.set_search_properties(METRIC, MODE, space)
    rng, done, times = np.random.default_rng(0), 0, {}

    def one(trial: int) -> float:
        config = searcher.suggest(str(trial))
        seconds = suggest_seconds(str(trial))  # what the run records as suggest_s
        assert config is not None and seconds is not None, f"{algo} suggested nothing"
        searcher.on_trial_complete(str(trial), {METRIC: _score(config, rng)})
        return seconds

    for checkpoint in sorted(at):
        while done < checkpoint:
            one(done)
            done += 1
        times[checkpoint] = float(np.mean([one(done + i) for i in range(probe)]))
        done += probe
    return times


def main(argv: list[str] | None = None) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    args = parse_args(argv)
    for algo in args.algos:
        times = suggestion_times(algo, args.at, args.probe)
        shown = ", ".join(f"{t * 1000:.1f} ms after {n}" for n, t in times.items())
        print(f"{algo:9s} suggestion time per trial: {shown} completed trials")


if __name__ == "__main__":
    main()
