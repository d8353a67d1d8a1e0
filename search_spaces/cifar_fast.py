"""CIFAR-10, fast: the airbench-style net (models/airbench.py) with SGD-Nesterov,
large batches, label smoothing, a short OneCycle and test-time flipping; GPU-sized
(target: 94% test accuracy in under 10 s of training per trial on one modern GPU)."""

from pipelines import Budget, LogUniform, Sweep, Uniform

SWEEP = Sweep(
    description="CIFAR-10, fast: airbench-style net, SGD-Nesterov, batch 1024, 10 epochs",
    space={
        "lr": LogUniform(0.05, 2.0, grid=(0.2, 0.5)),  # per 256 examples
        "momentum": Uniform(0.8, 0.95, grid=(0.85,)),
        "weight_decay": LogUniform(1e-4, 1e-2, grid=(5e-4,)),
        "label_smoothing": Uniform(0.0, 0.3, grid=(0.2,)),
    },
    fixed={"model": "airbench", "optimizer": "sgd", "nesterov": True,
           "schedule": "onecycle", "warmup_epochs": 2.0, "crop_padding": 2, "flip_prob": 0.5,
           "tta": True},
    full=Budget(num_samples=32, max_epochs=10, grace_period=2, reduction_factor=3,
                train_size=45_000, val_size=5_000,
                fixed={"batch_size": 1024, "width": 64}),  # airbench94's widths
    # CPU-sized: a smoke test of the recipe at a quarter of the width, not of its speed
    quick=Budget(num_samples=4, max_epochs=2, grace_period=1, reduction_factor=2,
                 train_size=4_000, val_size=1_000, fixed={"batch_size": 256, "width": 16}),
    default_algo="optuna",
)
