"""CIFAR-10 tuned in stages, in the practitioners' order: learning rate, batch
size, optimizer, schedule, width, then regularisation. Each stage searches its
own parameters with the best values so far fixed (see pipelines.tuning.staged);
`--joint` searches the same space all at once, for comparison."""

from pipelines import Choice, IntUniform, LogUniform, Stage, Sweep, Uniform
from search_spaces import cifar_sweep

SWEEP = Sweep(
    description="CIFAR-10 in stages: lr, batch size, optimizer, schedule, width, "
                "regularisation",
    space={
        "lr": LogUniform(1e-3, 1.0, grid=(0.01, 0.05, 0.2)),  # per 256 examples
        "batch_size": Choice((64, 128, 256)),
        "optimizer": Choice(("sgd", "adam", "adamw")),
        "momentum": Uniform(0.8, 0.99, grid=(0.9,)),  # SGD momentum, Adam beta1
        "schedule": Choice(("onecycle", "cosine")),
        "width": Choice((8, 16, 32)),  # first-stage channels
        "weight_decay": LogUniform(1e-5, 1e-1, grid=(5e-4,)),
        "dropout": Uniform(0.0, 0.5, grid=(0.0,)),
        "crop_padding": IntUniform(0, 4, grid=(4,)),  # pixels
        "flip_prob": Uniform(0.0, 0.5, grid=(0.5,)),
    },
    stages=(
        # the two best learning rates go on: the best lr at batch 256 need not be best
        # at 64 (the scaling rule is a first-order approximation)
        Stage("lr", ("lr",), num_samples=8, quick_num_samples=5, top_k=2),
        Stage("batch_size", ("batch_size",), num_samples=1, quick_num_samples=1,
              algo="grid"),
        # Adam's good lr is 10-100x below SGD's, so lr is searched again with it
        Stage("optimizer", ("optimizer", "momentum", "lr"), num_samples=12,
              quick_num_samples=6),
        Stage("schedule", ("schedule",), num_samples=1, quick_num_samples=1, algo="grid"),
        Stage("architecture", ("width",), num_samples=1, quick_num_samples=1, algo="grid"),
        Stage("regularisation", ("weight_decay", "dropout", "crop_padding", "flip_prob"),
              num_samples=12, quick_num_samples=6),
    ),
    # cifar_sweep's budgets and fixed values: the two differ only in how they search
    fixed=cifar_sweep.SWEEP.fixed,
    full=cifar_sweep.SWEEP.full,
    quick=cifar_sweep.SWEEP.quick,
    default_algo="optuna",
)
