"""ISBI 2012 membrane segmentation with a U-Net: depth and width, loss, crop
size and mild augmentation. Scored by mean IoU over membrane and interior on
whole validation slices (val_dice, val_dice_membrane beside it)."""

from pipelines import Budget, Choice, LogUniform, SegDataset, Sweep, Uniform

SWEEP = Sweep(
    description="ISBI 2012 membranes: U-Net depth/width, loss, crops, augmentation "
                "(val_miou)",
    task="segmentation",
    data=SegDataset("isbi2012_membrane", class_names=("membrane", "interior"),
                    class_values=(0, 255)),
    metric="val_miou",
    space={
        "lr": LogUniform(0.005, 0.2, grid=(0.03,)),  # per 256 crops: Adam 1.6e-4..6e-3 at 8
        "optimizer": Choice(("adam", "adamw"), grid=("adam",)),
        "weight_decay": LogUniform(1e-6, 1e-2, grid=(1e-4,)),
        "depth": Choice((3, 4, 5), grid=(4,)),  # U-Net levels
        "width": Choice((8, 16), grid=(8, 16)),  # channels at the top level
        "dropout": Uniform(0.0, 0.5, grid=(0.0,)),  # at the bottleneck
        "loss": Choice(("bce", "dice", "bce_dice"), grid=("bce", "bce_dice")),
        "dice_weight": Uniform(0.2, 0.8, grid=(0.5,)),  # bce_dice only
        "crop_size": Choice((96, 128, 192), grid=(128,)),  # pixels
        "flip_prob": Uniform(0.0, 0.5, grid=(0.5,)),
        "rot90_prob": Uniform(0.0, 0.5, grid=(0.5,)),
        "jitter": Uniform(0.0, 0.2, grid=(0.1,)),  # brightness/contrast, +-
    },
    fixed={"batch_size": 8, "schedule": "onecycle", "warmup_epochs": 0.5},
    # 24 training and 6 validation slices of the 30, split by seed
    full=Budget(num_samples=40, max_epochs=30, grace_period=3, reduction_factor=3,
                train_size=24, val_size=6),
    quick=Budget(num_samples=6, max_epochs=4, grace_period=1, reduction_factor=2,
                 train_size=24, val_size=6),
    default_algo="optuna",
)
