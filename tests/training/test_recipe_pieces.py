"""airbench's pieces as trainer options (issue 20): Lookahead over the optimizer (with
airbench's late start and ramp), the BatchNorm momentum and biases, the whitened,
frozen first layer, its schedule, identity init, alternating flip, reflected crops and
shifted test-time views; on real data that is not CIFAR-10 (scikit-learn's digits, as a
user's own RGB image folder, and a user's sweep file outside the repository)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from models.airbench import AirbenchNet
from pipelines.data import ImageFolder, open_split
from pipelines.data.cache import CACHE_DIR_ENV
from pipelines.training.augmentation import random_crop
from pipelines.training.batch_norm import set_bn_momentum
from pipelines.training.classify import (
    batches,
    build_classifier,
    epoch_mirror,
    shifted_views,
    train,
    tta_logits,
)
from pipelines.training.config import TrainConfig
from pipelines.training.lookahead import Lookahead
from pipelines.training.lr_schedules import build_schedule, triangle_factor
from pipelines.training.optim import build_optimizer, effective_lr
from pipelines.training.whitening import MOMENT_BATCH, first_conv, patch_moments, whiten_first_conv
from pipelines.tuning.trainable import load_state
from tests.digits import write_digits_folder

AIRBENCH: dict[str, Any] = dict(model="airbench", width=8, batch_size=50, crop_padding=1,
                                flip_prob=0.0, epochs=2, lr=0.2, nesterov=True)


@pytest.fixture(scope="module")
def rgb_digits(tmp_path_factory):
    """400 real 8x8 digits as an ImageFolder of RGB PNGs (a user's own images), 100
    held out."""
    root = tmp_path_factory.mktemp("digits")
    folder = write_digits_folder(root / "digits", n=400)
    for png in folder.rglob("*.png"):
        Image.open(png).convert("RGB").save(png)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_DIR_ENV, str(root / "cache"))
        return open_split(ImageFolder(str(folder)).prepare(None, None, 100, 0))


def _grad(p: torch.Tensor) -> torch.Tensor:
    assert p.grad is not None
    return p.grad


def trained(cfg: TrainConfig, data, **kwargs) -> torch.nn.Module:
    """The model `train` trained."""
    model = train(cfg, data, **kwargs).model
    assert model is not None
    return model


def test_lookahead_moves_the_slow_weights_toward_the_fast_ones_every_k_steps():
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 1)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    lookahead = Lookahead(opt, k=3, alpha=0.5)
    start = [p.detach().clone() for p in layer.parameters()]
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    for step in range(1, 4):
        fast_before = [p.detach().clone() for p in layer.parameters()]
        opt.zero_grad()
        F.mse_loss(layer(x), y).backward()
        if step == 3:  # the fast weights this step reaches, before the sync
            fast = [p - 0.1 * _grad(p) for p in layer.parameters()]
        opt.step()
        if step < 3:  # between syncs: the fast weights step, the slow ones stay
            assert all(torch.equal(s, p0) for s, p0 in zip(lookahead.slow, start))
            assert not torch.equal(layer.weight, fast_before[0])
    for slow, p0, f, p in zip(lookahead.slow, start, fast, layer.parameters()):
        assert torch.allclose(slow, p0 + 0.5 * (f - p0))  # half way to the fast weights
        assert torch.equal(p, slow)  # and the fast weights restart there
    assert lookahead.steps == 3


def test_lookahead_resumes_from_its_checkpoint_as_if_never_stopped(rgb_digits, tmp_path):
    cfg = TrainConfig(**{**AIRBENCH, "epochs": 3, "lookahead_k": 5, "lookahead_alpha": 0.5})
    straight: list[dict] = []
    result = train(cfg, rgb_digits, report=lambda m, s: straight.append(m))
    steps_per_epoch = len(rgb_digits.train_idx) // cfg.batch_size  # 300 / 50: 6

    def save_first_epoch(metrics, state):
        if metrics["epoch"] == 1:
            torch.save(state, tmp_path / "state.pt")

    train(cfg, rgb_digits, report=save_first_epoch)
    state = load_state(tmp_path / "state.pt")  # weights only: what a restored trial loads
    assert state["lookahead"]["steps"] == steps_per_epoch
    resumed: list[dict] = []
    train(cfg, rgb_digits, report=lambda m, s: resumed.append(m), resume_state=state)
    assert [m["epoch"] for m in resumed] == [2, 3]
    for a, b in zip(straight[1:], resumed):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
    # it acted: the same run without Lookahead ends elsewhere
    plain = trained(TrainConfig(**{**AIRBENCH, "epochs": 3}), rgb_digits)
    assert result.model is not None
    assert not torch.allclose(first_conv(plain).weight, first_conv(result.model).weight)


def test_bn_momentum_reaches_every_batchnorm(rgb_digits):
    model = trained(TrainConfig(**{**AIRBENCH, "epochs": 1, "bn_momentum": 0.4}), rgb_digits)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 6 and {m.momentum for m in norms} == {0.4}
    default = build_classifier(TrainConfig(**AIRBENCH), rgb_digits.info, torch.device("cpu"))
    assert set_bn_momentum(default, None) == 0
    assert {m.momentum for m in default.modules() if isinstance(m, torch.nn.BatchNorm2d)} \
        == {0.1}


def _images(data, n=300):
    images, _ = next(batches(data, data.train_idx[:n], n, torch.device("cpu")))
    return images


def test_whitening_makes_the_training_patches_covariance_the_identity(rgb_digits):
    cfg = TrainConfig(**AIRBENCH)
    model = build_classifier(cfg, rgb_digits.info, torch.device("cpu"))
    images = _images(rgb_digits)
    conv = whiten_first_conv(model, images, eps=1e-9)
    assert conv.out_channels == 24 and not conv.weight.requires_grad
    with torch.no_grad():
        out = conv(images).double()  # (N, 24, 7, 7)
    white = out[:, :12].permute(0, 2, 3, 1).reshape(-1, 12)  # largest eigenvalues first
    cov = torch.cov(white.T)
    # grey digits as RGB: the 2x2x3 patches span 4 dimensions (the channels are equal),
    # and on those the covariance is the identity; the other 8 outputs are constant (only
    # rounding noise, scaled up by 1/sqrt(eps), so their covariance with the first 4 is
    # bounded by sqrt(variance) and no closer to 0: it varies with the CPU's conv kernels)
    variances = torch.diag(cov)
    assert torch.allclose(cov[:4, :4], torch.eye(4, dtype=cov.dtype), atol=1e-3)
    assert variances[4:].max() < 1e-5
    assert white.mean(0).abs().max() < 1e-3  # the bias centres them
    assert torch.allclose(out[:, 12:], -out[:, :12], atol=1e-5)  # and the negated half


def test_patch_moments_summed_in_batches_equal_the_moments_of_all_patches_at_once(
        rgb_digits):
    images = _images(rgb_digits) + 3.0  # a mean large against the spread
    assert len(images) > MOMENT_BATCH  # so the tensor is summed in two batches
    patches = F.unfold(images.double(), (2, 2)).transpose(1, 2).reshape(-1, 12)
    for given in (images, iter(images.split(7))):  # a tensor, or a stream of batches
        mean, cov = patch_moments(given, (2, 2))
        assert torch.allclose(mean, patches.mean(0), atol=1e-12)
        assert torch.allclose(cov, torch.cov(patches.T, correction=0), atol=1e-12)
    with pytest.raises(ValueError, match="none were given"):
        patch_moments(iter([]), (2, 2))


def test_whiten_trains_with_the_first_layer_frozen_and_refuses_a_shape_it_cannot_hold(
        rgb_digits):
    cfg = TrainConfig(**{**AIRBENCH, "whiten": True})
    conv = first_conv(trained(cfg, rgb_digits))
    assert not conv.weight.requires_grad and conv.bias is not None
    # after 2 epochs the weights are still the whitening of the training images (all 300)
    fresh = build_classifier(cfg, rgb_digits.info, torch.device("cpu"))
    assert torch.allclose(conv.weight, whiten_first_conv(fresh, _images(rgb_digits)).weight)
    fresh_bias = first_conv(fresh).bias
    assert fresh_bias is not None and not torch.allclose(conv.bias, fresh_bias)  # it trained
    # simple_cnn's first layer (16 filters of 3x3x3 = 27 values): the top 16 directions
    simple = build_classifier(TrainConfig(model="simple_cnn"), rgb_digits.info,
                              torch.device("cpu"))
    assert first_conv(simple).out_channels == 16
    whiten_first_conv(simple, _images(rgb_digits))
    # more than 2 x 27 filters cannot all whiten
    wide = build_classifier(TrainConfig(model="simple_cnn", width=64), rgb_digits.info,
                            torch.device("cpu"))
    with pytest.raises(ValueError, match="at most 54 output channels .* has 64"):
        whiten_first_conv(wide, _images(rgb_digits))


@pytest.mark.integration
def test_a_users_sweep_searches_the_pieces_on_their_own_images(tmp_path, local_ray, capsys):
    from pipelines.tuning.run_plan import RunOptions
    from pipelines.tuning.runner import run
    from tests.conftest import REPO
    from tests.user_sweeps import own_digits_sweep

    sweeps = own_digits_sweep(tmp_path, n=600)
    sweep_file = next(sweeps)
    assert not sweep_file.is_relative_to(REPO)
    text = sweep_file.read_text().replace(
        '"width": Choice((16, 32))',
        '"whiten": Choice((False, True)), "lookahead_k": Choice((0, 4))')
    sweep_file.write_text(text.replace('"flip_prob": 0.0}', '"flip_prob": 0.5, '
                                       '"bn_momentum": 0.4, "bn_bias_lr": 8.0, '
                                       '"freeze_bn_weights": True, "weight_decay": 0.0, '
                                       '"decoupled_wd": 0.05, "schedule": "triangle", '
                                       '"warmup_epochs": 1.0, "lookahead_start": 1.0, '
                                       '"lookahead_ramp": 3.0, "lookahead_alpha": 0.3, '
                                       '"whiten_bias_epochs": 1, "dirac_init": True, '
                                       '"alternate_flip": True, "padding_mode": "reflect", '
                                       '"tta": True, "tta_shift": 1}'))
    run(RunOptions(sweep=str(sweep_file), quick=True, algo="grid", scheduler="none",
                   max_epochs=3, storage=str(tmp_path / "results"), name="run"))
    trials = pd.read_parquet(tmp_path / "results" / "digits_sweep" / "run" / "trials.parquet")
    assert (trials["status"] == "TERMINATED").all()
    pieces = set(zip(trials["config/whiten"], trials["config/lookahead_k"]))
    assert pieces == {(False, 0), (False, 4), (True, 0), (True, 4)}
    assert (trials["config/bn_momentum"] == 0.4).all()
    assert (trials["config/decoupled_wd"] == 0.05).all()
    assert (trials["config/bn_bias_lr"] == 8.0).all() and trials["config/freeze_bn_weights"].all()
    assert (trials["config/schedule"] == "triangle").all()
    assert (trials["config/padding_mode"] == "reflect").all()
    assert (trials["config/tta_shift"] == 1).all() and trials["config/alternate_flip"].all()
    assert trials["config/dirac_init"].all() and (trials["config/whiten_bias_epochs"] == 1).all()
    assert trials["best_val_acc"].min() > 0.25  # it learned: chance is 0.1
    next(sweeps, None)


def test_bn_biases_train_at_their_own_lr_and_bn_scales_can_be_frozen(rgb_digits):
    cfg = TrainConfig(**{**AIRBENCH, "epochs": 1, "bn_bias_lr": 64.0, "freeze_bn_weights": True})
    states: list[dict] = []
    model = trained(cfg, rgb_digits, report=lambda m, s: states.append(s))
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    # the scales stayed at 1, untrained; the biases trained
    assert all(not n.weight.requires_grad and torch.equal(n.weight, torch.ones_like(n.weight))
               for n in norms)
    assert all(n.bias.abs().sum() > 0 for n in norms)
    # through the schedule (onecycle), the biases' group keeps 64x the others' lr
    groups = states[-1]["optimizer"]["param_groups"]
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(64 * groups[0]["lr"])
    assert len(groups[1]["params"]) == len(norms)  # every BatchNorm's bias, nothing else
    # by default one group in the model's order, as checkpoints before these options had
    opt = build_optimizer(build_classifier(TrainConfig(**AIRBENCH), rgb_digits.info,
                                           torch.device("cpu")), TrainConfig(**AIRBENCH))
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_decoupled_wd_shrinks_the_weights_per_1024_examples_whatever_the_lr(optimizer):
    layer = torch.nn.Linear(4, 3)
    before = layer.weight.detach().clone()
    for lr in (0.01, 1.0):
        cfg = TrainConfig(optimizer=optimizer, lr=lr, batch_size=512, momentum=0.0,
                          weight_decay=0.0, decoupled_wd=0.1)
        copy = torch.nn.Linear(4, 3)
        copy.load_state_dict(layer.state_dict())
        opt = build_optimizer(torch.nn.Sequential(copy), cfg)
        copy.weight.grad = torch.zeros_like(copy.weight)  # decay alone
        copy.bias.grad = torch.zeros_like(copy.bias)
        opt.step()
        # a step of 512 examples at the peak lr: 0.1 x 512 / 1024 = 5% off
        assert torch.allclose(copy.weight, before * (1 - 0.05), atol=1e-6)


def test_decoupled_wd_with_coupled_decay_or_adam_is_refused():
    with pytest.raises(ValueError, match="decoupled_wd needs weight_decay=0"):
        TrainConfig.from_dict({"decoupled_wd": 0.1, "weight_decay": 5e-4})
    with pytest.raises(ValueError, match="optimizer='adam'"):
        TrainConfig.from_dict({"decoupled_wd": 0.1, "weight_decay": 0.0, "optimizer": "adam"})
    with pytest.raises(ValueError, match="bn_bias_lr must be > 0"):
        TrainConfig.from_dict({"bn_bias_lr": 0.0})


# ---- airbench94's remaining pieces: its schedule, Lookahead's start and ramp, the whitening
# bias's epochs, identity init, alternating flip, reflected crops, shifted test-time views ----


def _scheduled_lrs(cfg: TrainConfig, steps_per_epoch: int) -> list[float]:
    """The lr of every step of `cfg`'s schedule, from a real optimizer."""
    opt = build_optimizer(torch.nn.Linear(2, 1).parameters(), cfg)
    schedule = build_schedule(opt, cfg, steps_per_epoch=steps_per_epoch)
    lrs = []
    for _ in range(cfg.epochs * steps_per_epoch):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.after_batch()
    return lrs


def test_triangle_schedule_rises_and_falls_linearly_and_reaches_the_optimizer(rgb_digits):
    cfg = TrainConfig(**{**AIRBENCH, "epochs": 3, "schedule": "triangle", "warmup_epochs": 1.0,
                         "lr_start_factor": 0.2, "lr_end_factor": 0.07})
    lrs = _scheduled_lrs(cfg, steps_per_epoch=10)
    peak = effective_lr(cfg.lr, cfg.batch_size)
    assert lrs[0] == pytest.approx(0.2 * peak) and max(lrs) == pytest.approx(peak)
    assert lrs.index(max(lrs)) == 10  # the peak at warmup_epochs
    rise, fall = torch.tensor(lrs[:11]).diff(), torch.tensor(lrs[10:]).diff()
    assert torch.allclose(rise, rise[0].expand_as(rise)) and rise[0] > 0  # linear, up
    assert torch.allclose(fall, fall[0].expand_as(fall)) and fall[0] < 0  # linear, down
    assert lrs[-1] == pytest.approx(peak * (1 + (0.07 - 1) * 19 / 20))  # toward 0.07, not 0
    # in the trainer: each epoch's last step at the triangle's lr (6 steps an epoch)
    reports: list[dict] = []
    train(cfg, rgb_digits, report=lambda m, s: reports.append(m))
    for m in reports:
        last = m["epoch"] * 6 - 1
        assert m["lr"] == pytest.approx(peak * triangle_factor(last, 18, 6, 0.2, 0.07))
    # a warm-up longer than half the run rises over half of it, and then falls
    short = TrainConfig(**{**AIRBENCH, "epochs": 2, "schedule": "triangle",
                           "warmup_epochs": 2.3})
    lrs = _scheduled_lrs(short, steps_per_epoch=10)
    assert lrs.index(max(lrs)) == 10 and lrs[-1] < lrs[10]
    with pytest.raises(ValueError, match="lr_end_factor must be in"):
        TrainConfig.from_dict({"schedule": "triangle", "lr_end_factor": 1.5})


def test_lookahead_starts_late_and_its_step_ramps_down_over_the_run():
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 1)
    stats = torch.zeros(3)  # a float buffer, as BatchNorm's running mean
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    lookahead = Lookahead(opt, k=2, alpha=0.2, start=4, ramp=3.0, total=10, extra=[stats])
    assert lookahead.alpha_at(10) == pytest.approx(0.2)  # alpha at the end
    assert lookahead.alpha_at(1) > 0.99  # early: the slow weights follow the fast ones
    x, y = torch.randn(16, 4), torch.randn(16, 1)
    history = []
    for step in range(1, 9):
        opt.zero_grad()
        F.mse_loss(layer(x), y).backward()
        fast = [p.detach() - 0.1 * _grad(p) for p in layer.parameters()]
        stats += 1.0  # the buffer moves as the steps go
        before = stats.clone()
        opt.step()
        history.append((fast, before, [p.detach().clone() for p in layer.parameters()]))
        if step <= 6:  # plain steps up to 4; at 6 the slow weights only start from the fast
            assert all(torch.allclose(p, f) for p, f in zip(layer.parameters(), fast))
    started = history[5][2] + [history[5][1]]  # step 6's fast weights and buffer
    reached = history[7][0] + [history[7][1]]  # step 8's, before the lookahead step
    assert not torch.allclose(reached[0], started[0])  # the fast weights moved meanwhile
    alpha = 1 - 0.8 * (8 / 10) ** 3
    for slow, s6, f8 in zip(lookahead.slow, started, reached):
        assert torch.allclose(slow, s6 + alpha * (f8 - s6))
    assert all(torch.equal(p, s) for p, s in zip(layer.parameters(), lookahead.slow))
    assert torch.equal(stats, lookahead.slow[-1])  # the buffer averaged too
    opt.step()  # a step between syncs: sync() takes the weights back to the slow ones
    lookahead.sync()
    assert all(torch.equal(p, s) for p, s in zip(layer.parameters(), lookahead.slow))


def test_the_trainers_model_is_the_slow_one_at_each_epochs_end(rgb_digits):
    cfg = TrainConfig(**{**AIRBENCH, "epochs": 3, "lookahead_k": 5, "lookahead_alpha": 0.3,
                         "lookahead_start": 1.0, "lookahead_ramp": 3.0})
    seen: list[tuple[dict, dict]] = []
    train(cfg, rgb_digits, report=lambda m, s: seen.append(
        ({k: v.clone() for k, v in s["model"].items()},
         {"slow": [t.clone() for t in s["lookahead"]["slow"]],
          "started": s["lookahead"]["started"]})))
    model = build_classifier(cfg, rgb_digits.info, torch.device("cpu"))
    params = [name for name, _ in model.named_parameters()]
    buffers = [name for name, b in model.named_buffers() if b.is_floating_point()]
    # 6 steps an epoch: the slow weights start at step 10 (the first of every 5th after
    # 6) and step at 15; the epochs end at 12 and 18, steps past them, so the weights
    # reported there are the slow ones only as the sync at the epoch's end sets them
    assert [lookahead["started"] for _, lookahead in seen] == [False, True, True]
    for weights, lookahead in seen[1:]:  # every epoch's end once they started
        assert len(lookahead["slow"]) == len(params) + len(buffers)
        for name, slow in zip(params + buffers, lookahead["slow"]):
            assert torch.equal(weights[name], slow), name


def test_airbenchs_epoch_counted_pieces_resume_as_if_never_stopped(rgb_digits, tmp_path):
    """A trial paused after epoch 1 and resumed: Lookahead not started yet (its start
    saved), the whitening bias frozen from epoch 2, the mirror of epoch 2 and 3."""
    cfg = TrainConfig(**{**AIRBENCH, "epochs": 3, "lookahead_k": 5, "lookahead_alpha": 0.3,
                         "lookahead_start": 1.0, "lookahead_ramp": 3.0, "whiten": True,
                         "whiten_bias_epochs": 1, "alternate_flip": True, "flip_prob": 0.5,
                         "schedule": "triangle", "warmup_epochs": 1.0})
    straight: list[dict] = []
    train(cfg, rgb_digits, report=lambda m, s: straight.append(m))

    def save_first_epoch(metrics, state):
        if metrics["epoch"] == 1:
            torch.save(state, tmp_path / "state.pt")

    train(cfg, rgb_digits, report=save_first_epoch)
    state = load_state(tmp_path / "state.pt")
    assert state["lookahead"]["started"] is False
    resumed: list[dict] = []
    train(cfg, rgb_digits, report=lambda m, s: resumed.append(m), resume_state=state)
    assert [m["epoch"] for m in resumed] == [2, 3]
    for a, b in zip(straight[1:], resumed):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_acc"] == pytest.approx(b["val_acc"])


def test_the_whitening_bias_trains_its_epochs_then_stays(rgb_digits):
    cfg = TrainConfig(**{**AIRBENCH, "epochs": 3, "whiten": True, "whiten_bias_epochs": 1})
    biases: list[torch.Tensor] = []
    model = trained(cfg, rgb_digits, report=lambda m, s: biases.append(
        s["model"]["features.0.bias"].clone()))
    fresh = build_classifier(cfg, rgb_digits.info, torch.device("cpu"))
    whitened = whiten_first_conv(fresh, _images(rgb_digits)).bias
    assert whitened is not None and not torch.allclose(biases[0], whitened)  # epoch 1 trained
    assert torch.equal(biases[0], biases[1]) and torch.equal(biases[1], biases[2])  # then not
    bias = first_conv(model).bias
    assert bias is not None and not bias.requires_grad
    always: list[torch.Tensor] = []
    train(dataclasses.replace(cfg, whiten_bias_epochs=0), rgb_digits,
          report=lambda m, st: always.append(st["model"]["features.0.bias"].clone()))
    assert not torch.equal(always[1], always[2])  # 0: it trains throughout


def test_dirac_init_starts_every_convolution_as_the_identity(rgb_digits):
    cfg = TrainConfig(**{**AIRBENCH, "dirac_init": True})
    torch.manual_seed(0)
    model = build_classifier(cfg, rgb_digits.info, torch.device("cpu"))
    torch.manual_seed(0)
    plain = build_classifier(TrainConfig(**AIRBENCH), rgb_digits.info, torch.device("cpu"))
    convs = [(m, p) for m, p in zip(model.modules(), plain.modules())
             if isinstance(m, torch.nn.Conv2d) and isinstance(p, torch.nn.Conv2d)]
    assert len(convs) == 7  # the stem and 2 in each of 3 groups
    for conv, same in convs[1:]:  # 3x3, padding "same": the first in_channels pass through
        x = torch.randn(2, conv.in_channels, 5, 5)
        with torch.no_grad():
            out = conv(x)
        n = min(conv.in_channels, conv.out_channels)
        assert torch.allclose(out[:, :n], x[:, :n], atol=1e-6)
        # the other filters are the model's own init, drawn as without it
        assert torch.equal(conv.weight[n:], same.weight[n:])
    # it draws no random numbers: what comes after the model is built is the same
    head, plain_head = model.get_submodule("head"), plain.get_submodule("head")
    assert isinstance(head, torch.nn.Linear) and isinstance(plain_head, torch.nn.Linear)
    assert torch.equal(head.weight, plain_head.weight)


def test_alternate_flip_mirrors_each_image_every_other_epoch(rgb_digits):
    cfg = TrainConfig(**{**AIRBENCH, "crop_padding": 0, "flip_prob": 0.5,
                         "alternate_flip": True, "batch_size": 300, "epochs": 3})
    first, second = epoch_mirror(cfg, 300, 1), epoch_mirror(cfg, 300, 2)
    assert first is not None and second is not None
    third = epoch_mirror(cfg, 300, 3)
    assert third is not None and torch.equal(second, ~first) and torch.equal(third, first)
    assert 0.4 < first.float().mean() < 0.6  # flip_prob of them, drawn from the seed
    assert epoch_mirror(dataclasses.replace(cfg, alternate_flip=False), 300, 1) is None
    # batches mirror exactly the marked images
    plain, _ = next(batches(rgb_digits, rgb_digits.train_idx, 300, torch.device("cpu")))
    mirrored, _ = next(batches(rgb_digits, rgb_digits.train_idx, 300, torch.device("cpu"),
                               mirror=first))
    assert torch.equal(mirrored[first], plain[first].flip(3))
    assert torch.equal(mirrored[~first], plain[~first])
    # in the trainer (one batch an epoch, in index order): epoch 2 sees epoch 1's mirror
    seen: list[torch.Tensor] = []

    def record(module, args):
        if isinstance(module, AirbenchNet) and module.training:
            seen.append(args[0].detach().clone())

    handle = torch.nn.modules.module.register_module_forward_pre_hook(record)
    try:
        train(cfg, rgb_digits)
    finally:
        handle.remove()
    steps = seen[-3:]  # before them: the cost probe's steps (no epoch, no mirror)
    assert len(seen) == 5 and all(len(x) == 300 for x in steps)
    assert torch.equal(steps[0], mirrored) and torch.equal(steps[1], mirrored.flip(3))
    assert torch.equal(steps[2], steps[0])


def test_the_crop_pads_with_reflected_edges(rgb_digits):
    x = torch.rand(64, 3, 8, 8) + 1.0  # no zeros anywhere
    generator = torch.Generator().manual_seed(0)
    zeros = random_crop(x, 2, generator)
    assert (zeros == 0).any()  # some crops reach into the zero padding
    reflected = random_crop(x, 2, torch.Generator().manual_seed(0), "reflect")
    assert not (reflected == 0).any()
    padded = F.pad(x, (2,) * 4, mode="reflect")
    windows = {(dy, dx): padded[..., dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)}
    assert all(any(torch.equal(reflected[i], w[i]) for w in windows.values())
               for i in range(len(x)))
    with pytest.raises(ValueError, match="unknown padding_mode 'mirror'; known: constant"):
        TrainConfig.from_dict({"padding_mode": "mirror"})


def test_tta_shift_averages_the_shifted_views_as_airbench_level_2():
    x = torch.randn(4, 3, 8, 8)
    down_right, up_left = shifted_views(x, 1)
    assert torch.equal(down_right[..., 1:, 1:], x[..., :-1, :-1])  # moved down and right
    assert torch.equal(up_left[..., :-1, :-1], x[..., 1:, 1:])
    assert torch.equal(down_right[..., 0, 1:], x[..., 1, :-1])  # the edge reflected
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 64, 10)).eval()
    cfg = TrainConfig(tta=True, tta_shift=1)

    def mirrored(v):
        return (model(v) + model(v.flip(3))) / 2

    with torch.no_grad():
        expected = mirrored(x) / 2 + (mirrored(down_right) + mirrored(up_left)) / 4
        assert torch.allclose(tta_logits(model, x, cfg), expected, atol=1e-6)
        assert torch.allclose(tta_logits(model, x, dataclasses.replace(cfg, tta_shift=0)),
                              mirrored(x), atol=1e-6)
    small = torch.randn(1, 1, 2, 2)  # too small to reflect 3 pixels: the edge repeated
    assert shifted_views(small, 3)[0].shape == small.shape
