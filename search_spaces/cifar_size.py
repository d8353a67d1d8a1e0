"""CIFAR-10, accuracy against size: the most accurate net for its parameters.

Two objectives (val_acc up, params down) searched together: Optuna's
multi-objective TPE by default, `--algo nsga2` or `--algo gp` as well; the
report draws the Pareto front. Add `--max-params N` or `--max-memory-mb N` to
search within a budget: a configuration over it is infeasible at its start,
trains nothing, and is never ranked.
"""

from pipelines import Budget, Choice, LogUniform, Sweep

SWEEP = Sweep(
    description="CIFAR-10: accuracy against parameters (two objectives), width and depth "
                "of a plain CNN",
    metric=("val_acc", "params"),
    mode=("max", "min"),
    space={
        "lr": LogUniform(0.01, 1.0, grid=(0.1, 0.4)),  # per 256 examples
        "width": Choice((8, 16, 32, 64), grid=(8, 16, 32, 64)),  # first stage's channels
        "depth": Choice((1, 2, 3), grid=(1, 2, 3)),  # stages, each doubling the channels
    },
    fixed={"model": "plain_cnn", "optimizer": "sgd", "schedule": "onecycle"},
    full=Budget(num_samples=64, max_epochs=30, grace_period=3, reduction_factor=3,
                train_size=45_000, val_size=5_000),
    quick=Budget(num_samples=12, max_epochs=4, grace_period=1, reduction_factor=2,
                 train_size=5_000, val_size=1_000),
    default_algo="optuna",
)
