"""CIFAR-10 classification: optimiser, schedule, width, regularisation, augmentation."""

from pipelines import Budget, Choice, IntUniform, LogUniform, Sweep, Uniform

SWEEP = Sweep(
    description="CIFAR-10: lr, batch size, optimizer, schedule, width, regularisation, "
                "augmentation",
    space={
        "lr": LogUniform(1e-3, 1.0, grid=(0.01, 0.05, 0.2)),  # per 256 examples
        "batch_size": Choice((64, 128, 256), grid=(128, 256)),
        "optimizer": Choice(("sgd", "adam", "adamw"), grid=("sgd", "adamw")),
        "momentum": Uniform(0.8, 0.99, grid=(0.9,)),  # SGD momentum, Adam beta1
        "weight_decay": LogUniform(1e-5, 1e-1, grid=(5e-4,)),
        "schedule": Choice(("onecycle", "cosine"), grid=("onecycle",)),
        "dropout": Uniform(0.0, 0.5, grid=(0.0,)),
        "width": Choice((8, 16, 32), grid=(16,)),  # first-stage channels; see Budget.fixed
        "crop_padding": IntUniform(0, 4, grid=(4,)),  # pixels
        "flip_prob": Uniform(0.0, 0.5, grid=(0.5,)),
    },
    fixed={"warmup_epochs": 1.0},
    # A GPU-sized budget: all 45,000 / 5,000 images, a CIFAR ResNet-20.
    full=Budget(num_samples=64, max_epochs=30, grace_period=3, reduction_factor=3,
                train_size=45_000, val_size=5_000, fixed={"model": "resnet", "depth": 20}),
    # CPU-sized: minutes on 2 cores with the one-conv seed model.
    quick=Budget(num_samples=12, max_epochs=8, grace_period=1, reduction_factor=2,
                 train_size=10_000, val_size=2_000, fixed={"model": "simple_cnn"}),
    default_algo="optuna",
)
