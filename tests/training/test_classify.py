"""The trainer on tiny real data, without Ray."""

import contextlib
import dataclasses
import math
from typing import Any, Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.module import (
    register_module_forward_hook,
    register_module_forward_pre_hook,
)

from pipelines.data import ImageFolder, ImageInfo, TrainValData, open_split
from pipelines.data.cache import CACHE_DIR_ENV
from pipelines.training.classify import evaluate, train
from pipelines.training.config import TrainConfig
from pipelines.training.cost import Cost
from pipelines.training.loop import default_device
from pipelines.training.lr_schedules import SCHEDULES
from pipelines.training.optim import OPTIMIZERS, effective_lr
from pipelines.tuning.trainable import load_state
from tests.digits import CLASS_NAMES, digits, write_digits_folder

TINY: dict[str, Any] = dict(epochs=2, batch_size=100, model="simple_cnn", width=8)


def run(data, **overrides):
    reports = []
    result = train(TrainConfig(**{**TINY, **overrides}), data,
                   report=lambda metrics, state: reports.append((metrics, state)))
    return result, reports


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_each_optimizer_trains_and_reports_every_epoch(tiny_data, optimizer):
    lr = 0.05 if optimizer == "sgd" else 0.002
    result, reports = run(tiny_data, optimizer=optimizer, lr=lr)
    assert [m["epoch"] for m, _ in reports] == [1, 2]
    assert not result.diverged
    for metrics, state in reports:
        assert math.isfinite(metrics["train_loss"]) and math.isfinite(metrics["val_loss"])
        assert 0.0 <= metrics["val_acc"] <= 1.0
        assert metrics["images_per_s"] > 0 and metrics["epoch_s"] > 0
        assert set(state) >= {"model", "optimizer", "schedule", "epoch", "rng"}
    # seeded and deterministic: ~2.32 then ~2.19-2.20 for each optimizer
    assert reports[-1][0]["train_loss"] < reports[0][0]["train_loss"]


# What torch's optimizers hold of a config with momentum=0.8, weight_decay=1e-3 (written
# out here, not taken from optim.py): SGD's momentum, Adam's and AdamW's beta1.
SETTINGS: dict[str, Any] = dict(momentum=0.8, weight_decay=1e-3)
EXPECTED_GROUPS: dict[str, dict[str, Any]] = {
    "sgd": {"momentum": 0.8, "nesterov": False, "weight_decay": 1e-3, "dampening": 0},
    "sgd+nesterov": {"momentum": 0.8, "nesterov": True, "weight_decay": 1e-3},
    "adam": {"betas": (0.8, 0.999), "weight_decay": 1e-3, "decoupled_weight_decay": False},
    "adamw": {"betas": (0.8, 0.999), "weight_decay": 1e-3, "decoupled_weight_decay": True},
}


@pytest.mark.parametrize("case", sorted(EXPECTED_GROUPS))
def test_optimizer_settings_reach_the_torch_optimizer(tiny_data, case):
    assert {c.partition("+")[0] for c in EXPECTED_GROUPS} == set(OPTIMIZERS)  # all, no others
    optimizer, _, nesterov = case.partition("+")
    lr_per_256, batch_size = 0.04, 50
    result, reports = run(tiny_data, optimizer=optimizer, nesterov=bool(nesterov),
                          lr=lr_per_256, batch_size=batch_size, schedule="constant", epochs=1,
                          **SETTINGS)
    metrics, state = reports[0]
    groups = state["optimizer"]["param_groups"]  # the trainer's own optimizer, saved
    expected_lr = lr_per_256 * batch_size / 256  # the linear scaling rule
    assert metrics["lr"] == metrics["effective_lr"] == pytest.approx(expected_lr, rel=1e-12)
    for group in groups:
        assert group["lr"] == group["initial_lr"] == pytest.approx(expected_lr, rel=1e-12)
        expected = dict(EXPECTED_GROUPS[case])
        if "decoupled_weight_decay" not in group:  # torch < 2.6 does not record it
            expected.pop("decoupled_weight_decay", None)
        assert {k: group[k] for k in expected} == expected
    assert sum(len(g["params"]) for g in groups) == len(list(result.model.parameters()))


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_each_schedule_runs_and_keeps_lr_positive(tiny_data, schedule):
    result, reports = run(tiny_data, schedule=schedule, lr=0.05, epochs=3)
    lrs = [m["lr"] for m, _ in reports]
    assert len(lrs) == 3 and all(lr >= 0 for lr in lrs)
    if schedule in ("onecycle", "cosine", "step"):
        assert lrs[-1] < max(lrs)  # these anneal
    if schedule == "constant":
        assert lrs == [pytest.approx(effective_lr(0.05, 100))] * 3


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_schedules_survive_a_single_step_per_epoch(tiny_data, schedule):
    result, reports = run(tiny_data, schedule=schedule, epochs=1, batch_size=1000)
    assert len(reports) == 1 and not result.diverged


def test_step_schedule_drops_tenfold_at_half_and_three_quarters_of_the_steps(tiny_data):
    # 500 images in batches of 100: 5 steps an epoch, 20 in all; drops before steps 10, 15
    _, reports = run(tiny_data, schedule="step", lr=0.05, epochs=4)
    peak = 0.05 * 100 / 256
    last_step = [m["lr"] for m, _ in reports]  # the lr of each epoch's last step
    next_step = [s["optimizer"]["param_groups"][0]["lr"] for _, s in reports]
    assert last_step == pytest.approx([peak, peak, peak / 10, peak / 100], rel=1e-12)
    assert next_step == pytest.approx([peak, peak / 10, peak / 100, peak / 100], rel=1e-12)


def test_onecycle_rises_to_the_peak_then_anneals(tiny_data):
    _, reports = run(tiny_data, schedule="onecycle", warmup_epochs=2, epochs=6, lr=0.1)
    lrs = [m["lr"] for m, _ in reports]
    peak = effective_lr(0.1, 100)
    assert lrs[0] < lrs[1] == pytest.approx(peak, rel=0.05)  # the last step of the rise
    assert lrs[1] > lrs[2] > lrs[3] > lrs[4] > lrs[5] and lrs[5] < peak / 100


def test_cosine_warmup_starts_low(tiny_data):
    _, reports = run(tiny_data, schedule="cosine", warmup_epochs=2, epochs=4, lr=0.1)
    lrs = [m["lr"] for m, _ in reports]
    assert lrs[0] < lrs[1]  # still warming up after epoch 1
    assert lrs[1] == pytest.approx(effective_lr(0.1, 100), rel=0.05)


def test_cosine_warmup_longer_than_the_run_still_decays(tiny_data):
    _, reports = run(tiny_data, schedule="cosine", warmup_epochs=5, epochs=2, lr=0.1)
    lrs = [m["lr"] for m, _ in reports]
    assert lrs[1] < lrs[0]


def test_linear_scaling_rule():
    assert effective_lr(0.1, 256) == pytest.approx(0.1)
    assert effective_lr(0.1, 512) == pytest.approx(0.2)
    assert effective_lr(0.1, 64) == pytest.approx(0.025)


def test_regularisation_options_reach_the_model_and_the_optimizer(tiny_data):
    result, reports = run(tiny_data, dropout=0.4, label_smoothing=0.1, weight_decay=1e-3,
                          nesterov=True, crop_padding=2, flip_prob=1.0)
    assert not result.diverged
    dropouts = [m.p for m in result.model.modules() if isinstance(m, nn.Dropout)]
    assert dropouts and all(p == 0.4 for p in dropouts)
    for _, state in reports:
        for group in state["optimizer"]["param_groups"]:
            assert group["weight_decay"] == 1e-3 and group["nesterov"] is True


def test_divergence_stops_at_once(tiny_data):
    result, reports = run(tiny_data, optimizer="sgd", lr=1e6, epochs=5, schedule="constant")
    assert result.diverged
    assert len(reports) == 1 and reports[0][0]["diverged"] is True
    assert not math.isfinite(reports[0][0]["train_loss"])


def test_resume_from_checkpoint_matches_uninterrupted(tiny_data, tmp_path):
    cfg = TrainConfig(**{**TINY, "epochs": 3, "lr": 0.05})
    straight = []
    train(cfg, tiny_data, report=lambda m, s: straight.append(m))

    def save_first_epoch(metrics, state):  # as the Ray adapter does: save during the call
        if metrics["epoch"] == 1:
            torch.save(state, tmp_path / "state.pt")

    train(cfg, tiny_data, report=save_first_epoch)
    state = load_state(tmp_path / "state.pt")  # what a restored trial loads
    resumed = []
    train(cfg, tiny_data, report=lambda m, s: resumed.append(m), resume_state=state)
    assert [m["epoch"] for m in resumed] == [2, 3]
    for a, b in zip(straight[1:], resumed):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_acc"] == b["val_acc"]


def test_unknown_config_key_is_an_error():
    with pytest.raises(ValueError, match="unknown config key.*learning_rate"):
        TrainConfig.from_dict({"learning_rate": 0.1})


@pytest.mark.parametrize("bad", [{"lr": 0}, {"momentum": 1.0}, {"dropout": 1.0},
                                 {"optimizer": "adam", "nesterov": True}])
def test_invalid_values_are_errors(tiny_data, bad):
    with pytest.raises(ValueError):
        cfg = TrainConfig.from_dict(bad)
        train(cfg, tiny_data)


def _curve(data, **kwargs):
    reports = []
    train(TrainConfig(**{**TINY, "lr": 0.05}), data,
          report=lambda metrics, state: reports.append(metrics), **kwargs)
    return [(m["train_loss"], m["val_loss"], m["val_acc"]) for m in reports]


def test_data_resident_on_the_device_trains_exactly_as_from_the_memory_map(tiny_data):
    # the GPU path (uint8 split on the device, batches gathered there), run on the CPU
    assert _curve(tiny_data, resident=True) == _curve(tiny_data, resident=False)


@contextlib.contextmanager
def layer_output_dtypes() -> Iterator[set[torch.dtype]]:
    """The dtypes every conv and linear layer's output had while the block ran
    (training and evaluation), seen by a forward hook on every module."""
    seen: set[torch.dtype] = set()

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            seen.add(output.dtype)

    handle = register_module_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


@pytest.mark.parametrize("precision", ["bf16", "fp32", "auto"])
def test_precision_sets_the_dtype_layers_compute_in(tiny_data, precision):
    bf16 = precision == "bf16" or (precision == "auto" and default_device().type == "cuda")
    with layer_output_dtypes() as dtypes:
        result, reports = run(tiny_data, precision=precision, lr=0.05)
    assert dtypes == {torch.bfloat16 if bf16 else torch.float32}
    assert not result.diverged and reports[-1][0]["val_acc"] > 0.15
    assert all(math.isfinite(m["train_loss"]) for m, _ in reports)
    assert all(t.dtype == torch.float32 for t in reports[-1][1]["model"].values()
               if t.is_floating_point())  # autocast computes in bf16, keeps fp32 weights


def test_test_time_flip_scores_the_mean_of_an_image_and_its_mirror(tiny_data):
    result, _ = run(tiny_data, lr=0.05)
    model = result.model.eval()
    x = torch.from_numpy(np.asarray(tiny_data.images[tiny_data.val_idx]))
    info = tiny_data.info  # normalised by the training pool's statistics
    x = (x.permute(0, 3, 1, 2).float() / 255 - torch.tensor(info.mean)[:, None, None]) \
        / torch.tensor(info.std)[:, None, None]
    y = torch.from_numpy(np.asarray(tiny_data.labels[tiny_data.val_idx]))
    with torch.no_grad():
        plain, mirrored = model(x), model(x.flip(3))
    cfg = TrainConfig(**TINY)
    for tta, logits in [(False, plain), (True, (plain + mirrored) / 2)]:
        loss, acc = evaluate(model, tiny_data, torch.device("cpu"),
                             cfg=dataclasses.replace(cfg, tta=tta))
        assert acc == pytest.approx((logits.argmax(1) == y).float().mean().item())
        assert loss == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-5)
    assert not torch.equal(plain.argmax(1), mirrored.argmax(1))  # the flip changes answers


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        TrainConfig(precision="fp8").validate()


@pytest.fixture(scope="module")
def digits_data(tmp_path_factory):
    """All 1,797 real 8x8 grayscale digits as an ImageFolder: 10% held out."""
    root = tmp_path_factory.mktemp("digits")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_DIR_ENV, str(root / "cache"))
        return open_split(ImageFolder(str(write_digits_folder(root / "digits")))
                          .prepare(None, None, None, 0))


@pytest.mark.parametrize("model", ["simple_cnn", "resnet"])
def test_trains_on_one_channel_8x8_images_that_are_not_cifar(digits_data, model):
    assert digits_data.images.shape[1:] == (8, 8, 1)
    result, reports = run(digits_data, model=model, epochs=4, lr=0.2, batch_size=64,
                          crop_padding=1, flip_prob=0.0)  # a mirrored digit is another one
    assert not result.diverged
    assert reports[-1][0]["val_acc"] > 0.8  # chance is 0.1


def _digits_at(tmp_path, size, mode):
    """600 real digits as an ImageFolder of `mode` ("L" or "RGB") PNGs, decoded
    resized to size x size (ImageFolder's image_size)."""
    from PIL import Image

    root = write_digits_folder(tmp_path / "digits", n=600)
    for png in root.rglob("*.png"):
        Image.open(png).convert(mode).save(png)
    return open_split(ImageFolder(str(root), image_size=(size, size)).prepare(None, None, None, 0))


@pytest.mark.parametrize("size, mode, channels", [(28, "L", 1), (32, "RGB", 3)])
def test_torchvision_resnet18_trains_an_epoch_on_1x28x28_and_3x32x32(tmp_path, monkeypatch,
                                                                      size, mode, channels):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    data = _digits_at(tmp_path, size, mode)
    assert data.images.shape[1:] == (size, size, channels) and data.info.channels == channels
    result, reports = run(data, model="torchvision:resnet18", epochs=1, lr=0.008,
                          batch_size=32, crop_padding=2, flip_prob=0.0, optimizer="adamw",
                          schedule="constant")  # Adam at 1e-3 (lr per 256)
    first_conv = result.model.conv1
    assert first_conv.in_channels == channels and result.model.fc.out_features == 10
    assert len(reports) == 1 and not result.diverged
    # one epoch of 540 images takes it well above chance (0.1): ~0.6 measured
    assert math.isfinite(reports[0][0]["val_loss"]) and reports[0][0]["val_acc"] > 0.3


def _digits_in_memory(n=250, val=50):
    """The first n real digits as a TrainValData held in memory (no files): 1x8x8."""
    images, labels = digits(n)
    pool = images[..., None]  # (N, H, W, C) uint8
    info = ImageInfo(10, CLASS_NAMES, 1, (8, 8), (float(pool.mean() / 255),),
                     (float(pool.std() / 255),))
    return TrainValData(pool, labels, np.arange(n - val), np.arange(n - val, n), info)


def test_the_trainers_knobs_reach_the_model_the_optimizer_the_schedule_and_the_batches():
    data = _digits_in_memory()
    knobs = dict(model="simple_cnn", width=4, activation="gelu", fc_width=32, dropout=0.2,
                 optimizer="adam", lr=0.01, beta2=0.99, schedule="step", step_size=1.0,
                 gamma=0.5, epochs=2, batch_size=50, crop_padding=1, flip_prob=0.0)
    result, reports = run(data, **knobs, brightness=0.3, contrast=0.3)
    assert not result.diverged and len(reports) == 2
    kinds = {type(m) for m in result.model.modules()}
    assert nn.GELU in kinds and nn.ReLU not in kinds
    hidden = [m for m in result.model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in hidden] == [(4 * 4 * 4, 32), (32, 10)]
    assert [m.p for m in result.model.modules() if isinstance(m, nn.Dropout)] == [0.2]
    for _, state in reports:
        assert all(g["betas"] == (0.9, 0.99) for g in state["optimizer"]["param_groups"])
    first, second = (m["lr"] for m, _ in reports)
    assert second == pytest.approx(first / 2, rel=1e-12)  # a decay of gamma after 1 epoch
    # the jitter reached the batches: without crop and flip, the first step's images are
    # the same images (the epoch's order is drawn first) with other intensities
    still = {**TINY, **knobs, "epochs": 1, "crop_padding": 0}
    plain = _first_step_input(data, still)
    jittered = _first_step_input(data, {**still, "brightness": 0.3, "contrast": 0.3})
    assert plain.shape == jittered.shape
    changed = (jittered - plain).abs().amax(dim=(1, 2, 3)) > 1e-3
    assert changed.float().mean() > 0.9  # each image its own factors (a few may draw ~1)


def _first_step_input(data, config):
    """The input of the model's first convolution at the first training step."""
    seen: list[torch.Tensor] = []

    def hook(module, args):
        if isinstance(module, nn.Conv2d) and not seen:
            seen.append(args[0].detach().clone())

    handle = register_module_forward_pre_hook(hook)
    try:
        train(TrainConfig(**config), data, cost=Cost(0, 0.0))  # given a cost: not probed
    finally:
        handle.remove()
    return seen[0]
