"""CIFAR-10, fast: airbench94's recipe (Keller Jordan 2024) on the airbench-style
net (models/airbench.py): SGD-Nesterov, large batches, label smoothing, and
airbench's pieces as trainer options (AIRBENCH94, below); GPU-sized (target: 94%
test accuracy in under 10 s of training per trial on one modern GPU; on the JPEG
copy of CIFAR-10 in ../shared/data the recipe reaches 90.6%: README, Measured)."""

from typing import Any

from pipelines import Budget, LogUniform, Sweep, Uniform

# airbench94's pieces, by name (bench/fast_recipe.py measures each one's effect). Its decay
# of 0.0153 per 1,024 examples is divided there by 1 + 1 / (1 - momentum) (its "kilostep"
# scale, 7.67 at momentum 0.85) before torch's SGD compounds it by the momentum, as ours
# does: 0.002 here. Its Lookahead (an EMA every 5 steps from epoch 3, decay 0.95 ** 5 *
# (t / T) ** 3) is alpha 1 - 0.95 ** 5 at the end; its schedule peaks at 23% of 9.9 epochs
AIRBENCH94: dict[str, dict[str, Any]] = {
    "whiten": {"whiten": True, "whiten_bias_epochs": 3},
    "lookahead": {"lookahead_k": 5, "lookahead_alpha": 1 - 0.95 ** 5, "lookahead_start": 3.0,
                  "lookahead_ramp": 3.0},
    "bn_bias_lr": {"bn_bias_lr": 64.0, "freeze_bn_weights": True},
    "bn_momentum": {"bn_momentum": 0.4},
    "decoupled_wd": {"weight_decay": 0.0, "decoupled_wd": 0.002},
    "triangle": {"schedule": "triangle", "warmup_epochs": 2.3, "lr_start_factor": 0.2,
                 "lr_end_factor": 0.07},
    "dirac_init": {"dirac_init": True},
    "alternate_flip": {"alternate_flip": True},
    "reflect_crop": {"padding_mode": "reflect"},
    "tta_shift": {"tta_shift": 1},
}

SWEEP = Sweep(
    description="CIFAR-10, fast: airbench94's recipe, SGD-Nesterov, batch 1024, 10 epochs",
    space={
        "lr": LogUniform(0.05, 2.0, grid=(0.375, 0.5)),  # per 256 examples (airbench: 0.375)
        "momentum": Uniform(0.8, 0.95, grid=(0.85,)),
        "decoupled_wd": LogUniform(5e-4, 8e-3, grid=(0.002,)),  # per 1,024 examples
        "label_smoothing": Uniform(0.0, 0.3, grid=(0.2,)),
    },
    fixed={"model": "airbench", "optimizer": "sgd", "nesterov": True, "crop_padding": 2,
           "flip_prob": 0.5, "tta": True,
           **{key: value for piece in AIRBENCH94.values() for key, value in piece.items()
              if key != "decoupled_wd"}},
    full=Budget(num_samples=32, max_epochs=10, grace_period=2, reduction_factor=3,
                train_size=45_000, val_size=5_000,
                fixed={"batch_size": 1024, "width": 64}),  # airbench94's widths
    # CPU-sized: a smoke test of the recipe at a quarter of the width, not of its speed;
    # its epoch-counted pieces scaled to 2 epochs, so each one acts
    quick=Budget(num_samples=4, max_epochs=2, grace_period=1, reduction_factor=2,
                 train_size=4_000, val_size=1_000,
                 fixed={"batch_size": 256, "width": 16, "warmup_epochs": 0.5,
                        "lookahead_start": 0.6, "whiten_bias_epochs": 1}),
    default_algo="optuna",
)
