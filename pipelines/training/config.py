"""The trainer's configuration: one dataclass, validated, with units.

A sweep's space and fixed values are keys of this class; an unknown or
misspelt key is an error, never a silent default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from models import ACTIVATIONS, check_model
from pipelines.training.lr_schedules import SCHEDULES
from pipelines.training.optim import DECOUPLED_WD_OPTIMIZERS, OPTIMIZERS

PRECISIONS = ("auto", "fp32", "bf16")

ConfigT = TypeVar("ConfigT", bound="BaseConfig")  # from_dict builds the class it is called on


@dataclass(frozen=True)
class BaseConfig:
    """What every task's trainer shares: optimisation, schedule, model size, seed."""

    TASK: ClassVar[str] = ""  # the model registry's task (models/registry.py)

    # optimisation
    lr: float = 0.1  # per 256 examples; effective lr = lr * batch_size / 256 (optim.effective_lr)
    batch_size: int = 256  # examples per step
    optimizer: str = "sgd"  # sgd | adam | adamw (optim.py)
    momentum: float = 0.9  # SGD momentum; beta1 for Adam and AdamW
    beta2: float = 0.999  # Adam's and AdamW's second-moment decay, in [0, 1); sgd ignores it
    nesterov: bool = False  # SGD only
    weight_decay: float = 5e-4  # L2 for sgd/adam, decoupled for adamw
    # weight decay decoupled from the lr, per 1,024 examples (airbench's units): at the
    # schedule's peak a step shrinks the weights by decoupled_wd * batch_size / 1024
    # (optim.param_groups); sgd and adamw, with weight_decay 0. 0 = off
    decoupled_wd: float = 0.0
    bn_bias_lr: float = 1.0  # BatchNorm biases' lr, a multiple of the lr (airbench: 64)
    freeze_bn_weights: bool = False  # BatchNorm scales stay at their init (1), as airbench's
    l1: float = 0.0  # L1 penalty: l1 * sum |w| over weight tensors, added to the loss; 0 = off
    # Lookahead over the optimizer (lookahead.py): every lookahead_k steps, slow weights move
    # lookahead_alpha of the way to the optimizer's, which restart from them
    lookahead_k: int = 0  # steps; 0 = off (Zhang et al. 2019: 5)
    lookahead_alpha: float = 0.5  # in (0, 1]
    lookahead_start: float = 0.0  # epochs of plain steps before the slow weights start
    # a step of the slow weights that shrinks over the run, as airbench's: at step t of T
    # they move 1 - (1 - lookahead_alpha) * (t / T) ** lookahead_ramp of the way (airbench:
    # alpha 0.226 = 1 - 0.95 ** 5, ramp 3, start 3); 0 = lookahead_alpha throughout. Both
    # are ignored with lookahead_k 0. At each epoch's end the weights are the slow ones
    lookahead_ramp: float = 0.0
    # every BatchNorm's running-statistics momentum, in torch's sense (the weight of each new
    # batch's statistics; airbench's 0.6 in its sense is 0.4 here); None = the model's own
    bn_momentum: float | None = None  # in (0, 1]
    schedule: str = "onecycle"  # onecycle | cosine | step | plateau | constant
    warmup_epochs: float = 1.0  # linear warm-up (cosine); rise phase (onecycle)
    step_size: float = 0.0  # step: epochs between decays; 0 = at 50% and 75% of the epochs
    gamma: float = 0.1  # step: the lr's factor at each decay, in (0, 1]
    plateau_factor: float = 0.1  # plateau: the lr's factor at each reduction, in (0, 1)
    plateau_patience: int = 2  # plateau: epochs without a lower val_loss before a reduction
    # triangle: the lr at the first and at the last step, fractions of its peak (which is
    # at warmup_epochs); airbench's
    lr_start_factor: float = 0.2  # in [0, 1]
    lr_end_factor: float = 0.07  # in [0, 1]
    epochs: int = 10  # the schedule's horizon; ASHA may stop a trial earlier
    # per-trial early stopping, independent of ASHA: stop after `patience` epochs without an
    # improvement of at least `min_delta` (the sweep's metric's units) on the sweep's metric
    patience: int = 0  # epochs; 0 = off
    min_delta: float = 0.0  # the smallest change that counts as an improvement
    # model (models/)
    model: str = "simple_cnn"
    width: int = 16  # channels of the first conv stage
    depth: int | None = None  # model-specific; None = the model's default
    dropout: float = 0.0  # before the classifier; at a U-Net's bottleneck
    # relu | leaky_relu | prelu | gelu | silu | tanh | sigmoid (models/activations.py), every
    # nonlinearity of the model; None = the model's own (airbench: gelu; the others: relu)
    activation: str | None = None
    seed: int = 0
    # speed, not results (mostly): loop.py
    precision: str = "auto"  # auto: bf16 autocast on CUDA, fp32 elsewhere | fp32 | bf16
    compile: bool = False  # torch.compile the model (minutes of compiling, then faster steps)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls: type[ConfigT], values: dict[str, Any]) -> ConfigT:
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

    def checks(self) -> list[tuple[bool, str]]:
        return [
            (self.lr > 0, "lr must be > 0"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (0 <= self.momentum < 1, "momentum must be in [0, 1)"),
            (0 <= self.beta2 < 1, "beta2 must be in [0, 1) (Adam's default: 0.999)"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.l1 >= 0, "l1 must be >= 0 (0 = off)"),
            (self.decoupled_wd >= 0, "decoupled_wd must be >= 0 (0 = off)"),
            (self.bn_bias_lr > 0, "bn_bias_lr must be > 0 (a multiple of lr; 1 = the same)"),
            (self.lookahead_k >= 0, "lookahead_k must be >= 0 steps (0 = off)"),
            (0 < self.lookahead_alpha <= 1, "lookahead_alpha must be in (0, 1]"),
            (self.lookahead_start >= 0, "lookahead_start must be >= 0 epochs"),
            (self.lookahead_ramp >= 0, "lookahead_ramp must be >= 0 (0 = a constant alpha)"),
            (0 <= self.lr_start_factor <= 1, "lr_start_factor must be in [0, 1]"),
            (0 <= self.lr_end_factor <= 1, "lr_end_factor must be in [0, 1]"),
            (self.bn_momentum is None or 0 < self.bn_momentum <= 1,
             "bn_momentum must be in (0, 1] (torch's sense), or None for the model's own"),
            (self.patience >= 0, "patience must be >= 0 epochs (0 = off)"),
            (self.min_delta >= 0, "min_delta must be >= 0"),
            (self.warmup_epochs >= 0, "warmup_epochs must be >= 0"),
            (self.step_size >= 0, "step_size must be >= 0 epochs (0 = at 50% and 75%)"),
            (0 < self.gamma <= 1, "gamma must be in (0, 1] (the lr's factor at each step)"),
            (0 < self.plateau_factor < 1, "plateau_factor must be in (0, 1)"),
            (self.plateau_patience >= 0, "plateau_patience must be >= 0 epochs"),
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.width >= 1, "width must be >= 1"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.precision in PRECISIONS, f"unknown precision {self.precision!r}; known: "
                                           f"{', '.join(PRECISIONS)}"),
        ]

    def validate(self) -> None:
        for ok, message in self.checks():
            if not ok:
                raise ValueError(message)
        self._validate_names()

    def _validate_names(self) -> None:
        for key, value, known in (("optimizer", self.optimizer, list(OPTIMIZERS)),
                                  ("schedule", self.schedule, list(SCHEDULES)),
                                  ("activation", self.activation, [None, *ACTIVATIONS])):
            if value not in known:
                names = ", ".join(str(name) for name in known)
                raise ValueError(f"unknown {key} {value!r}; known: {names}")
        # ValueError: one line naming the model and the fix (e.g. a key its factory takes not)
        check_model(self.model, self.TASK, **self.model_values())
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ValueError("nesterov needs optimizer='sgd' with momentum > 0")
        if self.decoupled_wd and (self.weight_decay or
                                  self.optimizer not in DECOUPLED_WD_OPTIMIZERS):
            raise ValueError(f"decoupled_wd needs weight_decay=0 and an optimizer of "
                             f"{', '.join(DECOUPLED_WD_OPTIMIZERS)}; got weight_decay="
                             f"{self.weight_decay}, optimizer={self.optimizer!r}")

    def model_values(self) -> dict[str, Any]:
        """The config's keys that shape its model (models.SWEPT_KEYS), as build_model
        and check_model take them."""
        return {"width": self.width, "depth": self.depth, "dropout": self.dropout,
                "activation": self.activation}


PADDING_MODES = ("constant", "reflect", "replicate")  # torch.nn.functional.pad's


@dataclass(frozen=True)
class TrainConfig(BaseConfig):
    """Image classification (pipelines/training/classify.py)."""

    TASK: ClassVar[str] = "classification"

    label_smoothing: float = 0.0
    # test-time augmentation: score each validation (and --final test) image as the mean
    # of its logits and its mirror image's, as airbench does
    tta: bool = False
    # test-time: also score the image shifted `tta_shift` pixels up-left and down-right
    # (reflected edges): half the logits from the image (and its mirror with tta), a quarter
    # from each shift, as airbench94's level 2 (1 pixel); 0 = off
    tta_shift: int = 0
    # augmentation, on batched tensors
    crop_padding: int = 4  # pixels; random crop of 32x32 from the padded image; 0 = off
    flip_prob: float = 0.5  # horizontal flip probability
    # the crop's padding: constant (zeros, the mean image once normalised) | reflect |
    # replicate (airbench: reflect)
    padding_mode: str = "constant"
    # each training image is mirrored in every other epoch, from a first epoch that mirrors
    # it with flip_prob (drawn once from the seed): each image is seen both ways in any 2
    # epochs (airbench's alternating flip); off: mirrored with flip_prob in every epoch
    alternate_flip: bool = False
    # each image's intensity times a factor uniform in [1 - brightness, 1 + brightness], its
    # deviations from its mean intensity times one in [1 - contrast, 1 + contrast]; 0 = off
    brightness: float = 0.0  # in [0, 1)
    contrast: float = 0.0  # in [0, 1)
    # model head: a hidden fully connected layer (Linear, activation, Dropout) before the
    # classifier; `dropout` applies there
    fc_width: int = 0  # units; 0 = none (dropout right before the classifier)
    # the model's first convolution set to whiten the training images' patches (their
    # covariance's eigenvectors over sqrt(eigenvalue + eps)) and frozen, as in airbench
    # (whitening.py); it takes at most 2d output channels for patches of d values
    whiten: bool = False
    # whiten's bias trains for these first epochs; 0 = always; ignored without whiten
    whiten_bias_epochs: int = 0
    # every convolution's first in_channels filters start as the identity (a Dirac delta,
    # as airbench's), the rest as the model's init (identity_init.py); off by default
    dirac_init: bool = False

    def checks(self) -> list[tuple[bool, str]]:
        return [*super().checks(),
                (0 <= self.label_smoothing < 1, "label_smoothing must be in [0, 1)"),
                (self.crop_padding >= 0, "crop_padding must be >= 0"),
                (0 <= self.flip_prob <= 1, "flip_prob must be in [0, 1]"),
                (self.padding_mode in PADDING_MODES, f"unknown padding_mode "
                 f"{self.padding_mode!r}; known: {', '.join(PADDING_MODES)}"),
                (self.tta_shift >= 0, "tta_shift must be >= 0 pixels (0 = off)"),
                (self.whiten_bias_epochs >= 0,
                 "whiten_bias_epochs must be >= 0 (0 = the bias always trains)"),
                (0 <= self.brightness < 1, "brightness must be in [0, 1) (0 = off)"),
                (0 <= self.contrast < 1, "contrast must be in [0, 1) (0 = off)"),
                (self.fc_width >= 0, "fc_width must be >= 0 units (0 = no hidden layer)")]

    def model_values(self) -> dict[str, Any]:
        return {**super().model_values(), "fc_width": self.fc_width}


SEG_LOSSES = ("bce", "dice", "bce_dice")


@dataclass(frozen=True)
class SegConfig(BaseConfig):
    """Semantic segmentation (pipelines/training/segment.py)."""

    TASK: ClassVar[str] = "segmentation"

    lr: float = 0.03  # per 256 examples (crops): Adam's 1e-3 at batch 8 is 0.032
    batch_size: int = 8  # crops per step
    optimizer: str = "adam"
    weight_decay: float = 0.0
    model: str = "unet"
    depth: int | None = None  # U-Net levels; None = the model's default (4)
    loss: str = "bce_dice"  # bce | dice | bce_dice (seg_metrics.py)
    dice_weight: float = 0.5  # bce_dice: (1 - w) * BCE + w * soft Dice
    crop_size: int = 128  # pixels, square random crops for training
    flip_prob: float = 0.5  # each of a horizontal and a vertical flip
    rot90_prob: float = 0.5  # a rotation by 90, 180 or 270 degrees
    jitter: float = 0.1  # brightness and contrast each scaled by 1 +- up to this

    def checks(self) -> list[tuple[bool, str]]:
        return [*super().checks(),
                (self.loss in SEG_LOSSES, f"unknown loss {self.loss!r}; known: "
                                          f"{', '.join(SEG_LOSSES)}"),
                (0 <= self.dice_weight <= 1, "dice_weight must be in [0, 1]"),
                (self.crop_size >= 8, "crop_size must be >= 8 pixels"),
                (0 <= self.flip_prob <= 1, "flip_prob must be in [0, 1]"),
                (0 <= self.rot90_prob <= 1, "rot90_prob must be in [0, 1]"),
                (0 <= self.jitter < 1, "jitter must be in [0, 1)")]
