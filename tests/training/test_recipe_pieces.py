"""airbench's pieces as trainer options (issue 20): Lookahead over the optimizer,
the BatchNorm momentum, and the whitened, frozen first layer; on real data that is
not CIFAR-10 (scikit-learn's digits, as a user's own RGB image folder)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from pipelines.data import ImageFolder, open_split
from pipelines.data.cache import CACHE_DIR_ENV
from pipelines.training.batch_norm import set_bn_momentum
from pipelines.training.classify import batches, build_classifier, train
from pipelines.training.config import TrainConfig
from pipelines.training.lookahead import Lookahead
from pipelines.training.optim import build_optimizer
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
    sweep_file.write_text(text.replace('"flip_prob": 0.0}', '"flip_prob": 0.0, '
                                       '"bn_momentum": 0.4, "bn_bias_lr": 8.0, '
                                       '"freeze_bn_weights": True, "weight_decay": 0.0, '
                                       '"decoupled_wd": 0.05}'))
    run(RunOptions(sweep=str(sweep_file), quick=True, algo="grid", scheduler="none",
                   max_epochs=3, storage=str(tmp_path / "results"), name="run"))
    trials = pd.read_parquet(tmp_path / "results" / "digits_sweep" / "run" / "trials.parquet")
    assert (trials["status"] == "TERMINATED").all()
    pieces = set(zip(trials["config/whiten"], trials["config/lookahead_k"]))
    assert pieces == {(False, 0), (False, 4), (True, 0), (True, 4)}
    assert (trials["config/bn_momentum"] == 0.4).all()
    assert (trials["config/decoupled_wd"] == 0.05).all()
    assert (trials["config/bn_bias_lr"] == 8.0).all() and trials["config/freeze_bn_weights"].all()
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
