"""The trainer's configuration: one dataclass, validated, with units.

A sweep's space and fixed values are keys of this class; an unknown or
misspelt key is an error, never a silent default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

LR_REFERENCE_BATCH = 256  # `TrainConfig.lr` is the learning rate per 256 examples


def effective_lr(lr_per_256: float, batch_size: int) -> float:
    """The linear scaling rule (Goyal et al. 2017), applied here and nowhere else:
    the optimizer's learning rate grows with the batch size, so a sweep searches
    lr in batch-independent units and batch size separately."""
    return lr_per_256 * batch_size / LR_REFERENCE_BATCH


@dataclass(frozen=True)
class TrainConfig:
    # optimisation
    lr: float = 0.1  # per 256 examples; effective lr = lr * batch_size / 256 (optim.py)
    batch_size: int = 256  # examples per step
    optimizer: str = "sgd"  # sgd | adam | adamw (optim.py)
    momentum: float = 0.9  # SGD momentum; beta1 for Adam and AdamW
    nesterov: bool = False  # SGD only
    weight_decay: float = 5e-4  # L2 for sgd/adam, decoupled for adamw
    schedule: str = "onecycle"  # onecycle | cosine | step | plateau | constant
    warmup_epochs: float = 1.0  # linear warm-up (cosine); rise phase (onecycle)
    label_smoothing: float = 0.0
    epochs: int = 10  # the schedule's horizon; ASHA may stop a trial earlier
    # model (models/)
    model: str = "simple_cnn"
    width: int = 16  # channels of the first conv stage
    depth: int | None = None  # model-specific; None = the model's default
    dropout: float = 0.0  # before the classifier
    # augmentation, on batched tensors
    crop_padding: int = 4  # pixels; random crop of 32x32 from the padded image; 0 = off
    flip_prob: float = 0.5  # horizontal flip probability
    seed: int = 0

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Build from a dict (e.g. a Ray Tune trial config); unknown keys are an error."""
        unknown = sorted(set(values) - set(cls.field_names()))
        if unknown:
            raise ValueError(
                f"unknown config key(s) {', '.join(unknown)}; "
                f"known keys: {', '.join(cls.field_names())}"
            )
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        checks = [
            (self.lr > 0, "lr must be > 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (0 <= self.momentum < 1, "momentum must be in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.warmup_epochs >= 0, "warmup_epochs must be >= 0"),
            (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.width >= 1, "width must be >= 1"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.crop_padding >= 0, "crop_padding must be >= 0"),
            (0 <= self.flip_prob <= 1, "flip_prob must be in [0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        self._validate_names()

    def _validate_names(self) -> None:
        # imported here: the registries import this module
        from models import model_names
        from pipelines.optim import OPTIMIZERS
        from pipelines.schedules import SCHEDULES

        for key, value, known in (("model", self.model, model_names()),
                                  ("optimizer", self.optimizer, list(OPTIMIZERS)),
                                  ("schedule", self.schedule, list(SCHEDULES))):
            if value not in known:
                raise ValueError(f"unknown {key} {value!r}; known: {', '.join(known)}")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ValueError("nesterov needs optimizer='sgd' with momentum > 0")
