"""The shared epoch loop: step windows, per-trial early stopping (patience) and
the L1 penalty, on real data that is not CIFAR-10 (scikit-learn's digits)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
import torch

from pipelines.data import ImageFolder, open_split
from pipelines.data.cache import CACHE_DIR_ENV
from pipelines.records.tables import NO_IMPROVEMENT_KEY, STEPS_KEY
from pipelines.training.classify import train
from pipelines.training.config import TrainConfig
from pipelines.training.loop import (
    LOSS_WINDOWS,
    Monitor,
    l1_penalty,
    run_steps,
    step_windows,
    window_ends,
)
from pipelines.training.lr_schedules import build_schedule
from pipelines.training.optim import build_optimizer
from tests.digits import write_digits_folder

DIGITS: dict[str, Any] = dict(model="simple_cnn", width=8, batch_size=32, crop_padding=1,
                              flip_prob=0.0, epochs=3)


@pytest.fixture(scope="module")
def digits_data(tmp_path_factory):
    """600 real 8x8 digits as an ImageFolder (a user's own images), 100 held out."""
    root = tmp_path_factory.mktemp("digits")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(CACHE_DIR_ENV, str(root / "cache"))
        return open_split(ImageFolder(str(write_digits_folder(root / "digits", n=600)))
                          .prepare(None, None, 100, 0))


def _train(data, monitor=None, **overrides):
    reports: list[dict] = []
    result = train(TrainConfig(**{**DIGITS, **overrides}), data, monitor=monitor,
                   report=lambda metrics, state: reports.append(metrics))
    return result, reports


def test_every_epoch_reports_its_step_windows_across_epochs(digits_data):
    result, reports = _train(digits_data, lr=0.2)
    steps_per_epoch = math.ceil(len(digits_data.train_idx) / 32)
    previous = 0
    for metrics in reports:
        windows = metrics[STEPS_KEY]
        assert len(windows) == LOSS_WINDOWS
        steps = [step for step, _, _ in windows]
        assert steps[0] > previous and steps == sorted(steps)
        assert steps[-1] == metrics["epoch"] * steps_per_epoch  # global, from 1
        previous = steps[-1]
        assert windows[-1][2] == metrics["lr"]  # the lr at the epoch's last step
        assert all(math.isfinite(loss) for _, loss, _ in windows)
    # training makes progress: the last window's loss is below the first's
    assert reports[-1][STEPS_KEY][-1][1] < reports[0][STEPS_KEY][0][1]


def test_windows_split_an_epochs_steps_evenly_and_weigh_each_step_by_its_examples():
    assert window_ends(25, 10) == {2, 5, 8, 11, 14, 16, 18, 20, 22, 24}  # 3 steps, then 2
    assert window_ends(4, 10) == {0, 1, 2, 3} and window_ends(0) == frozenset()
    # running sums 2+2 (steps 1-2: 2 examples of loss 1, 2 of loss 3), then +5 (1 example)
    assert step_windows([8.0, 13.0], [(2, 4, 0.2), (3, 5, 0.3)]) == ((2, 2.0, 0.2),
                                                                       (3, 5.0, 0.3))
    assert step_windows([], []) == ()


def test_a_diverged_epoch_ends_its_last_window_where_it_stopped():
    model = torch.nn.Linear(2, 1)
    cfg = TrainConfig(optimizer="sgd", lr=1.0, batch_size=1, schedule="constant", epochs=1)
    opt = build_optimizer(model.parameters(), cfg)

    def exploding(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return model(x).sum() * 0 + (math.inf if y[0] >= 4 else 1.0)  # inf from step 5

    batches = iter([(torch.ones(1, 2), torch.tensor([i])) for i in range(40)])
    stats = run_steps(model, opt, build_schedule(opt, cfg, 40), torch.device("cpu"),
                      exploding, batches, steps=40)
    assert stats.diverged and stats.examples == 11  # the check every 10 steps
    assert [w[0] for w in stats.windows] == [4, 8, 11]
    assert stats.windows[0][1] == 1.0  # steps 1-4, before it blew up
    assert not any(math.isfinite(loss) for _, loss, _ in stats.windows[1:])


def test_no_step_windows_when_asked_for_none(digits_data):
    result, reports = _train(digits_data, epochs=1, lr=0.2)
    train(TrainConfig(**{**DIGITS, "epochs": 1, "lr": 0.2}), digits_data, loss_windows=0,
          report=lambda metrics, state: reports.append(metrics))
    assert len(reports[0][STEPS_KEY]) == LOSS_WINDOWS and reports[1][STEPS_KEY] == []


def test_patience_stops_a_trial_whose_metric_stalls(digits_data):
    # min_delta 0.6: after the first epoch no epoch gains that much accuracy
    result, reports = _train(digits_data, epochs=6, lr=0.2, patience=2, min_delta=0.6)
    assert [m["epoch"] for m in reports] == [1, 2, 3]
    assert result.no_improvement and result.epochs == 3 and result.patience_epoch == 1
    assert [m.get(NO_IMPROVEMENT_KEY, False) for m in reports] == [False, False, True]


def test_patience_follows_the_sweeps_metric_and_mode(digits_data):
    # val_loss, minimised: at a learning rate this small it falls every epoch, by little
    result, reports = _train(digits_data, epochs=4, lr=1e-4, patience=1,
                             monitor=("val_loss", "min"))
    losses = [m["val_loss"] for m in reports]
    assert losses == sorted(losses, reverse=True)  # improving every epoch: never stopped
    assert not result.no_improvement and result.epochs == 4
    result, reports = _train(digits_data, epochs=4, lr=1e-4, patience=1,
                             monitor=("val_loss", "max"))  # "improves" only upwards
    assert result.no_improvement and result.epochs == 2


def test_patience_is_off_without_validation_images(digits_data):
    # a final retrain: every training image, none held out, so no score to watch
    final = dataclasses.replace(digits_data, train_idx=np.sort(np.concatenate(
        [digits_data.train_idx, digits_data.val_idx])), val_idx=digits_data.val_idx[:0])
    result, reports = _train(final, epochs=4, lr=0.2, patience=1)
    assert result.epochs == 4 and not result.no_improvement


def test_patience_zero_never_stops_and_the_last_epoch_is_not_a_stop(digits_data):
    result, reports = _train(digits_data, epochs=3, lr=0.2, patience=0, min_delta=0.6)
    assert result.epochs == 3 and not result.no_improvement
    result, reports = _train(digits_data, epochs=3, lr=0.2, patience=2, min_delta=0.6)
    assert result.epochs == 3 and not result.no_improvement  # it ran its whole budget


def test_a_resumed_trial_keeps_counting_its_patience(digits_data):
    states: list[dict] = []
    cfg = TrainConfig(**{**DIGITS, "epochs": 6, "lr": 0.2, "patience": 2, "min_delta": 0.6})
    train(cfg, digits_data, report=lambda m, s: states.append(
        {k: v for k, v in s.items()}) if m["epoch"] == 2 else None)
    reports: list[dict] = []
    result = train(cfg, digits_data, resume_state=states[0],
                   report=lambda metrics, state: reports.append(metrics))
    assert [m["epoch"] for m in reports] == [3] and result.no_improvement


def test_the_monitor_counts_improvements_of_at_least_min_delta():
    watch = Monitor("val_acc", "max", min_delta=0.1)
    for epoch, value in enumerate([0.5, 0.55, 0.61, math.nan, 0.7], start=1):
        watch.update(epoch, {"val_acc": value})
    # 0.55 gains 0.05 (no), 0.61 gains 0.11 over 0.5 (yes), NaN (no), 0.7 gains 0.09 (no)
    assert (watch.best, watch.best_epoch, watch.since) == (0.61, 3, 2)


def test_l1_adds_its_gradient_to_the_weights_only():
    torch.manual_seed(0)
    linear = torch.nn.Linear(3, 4)
    model = torch.nn.Sequential(linear, torch.nn.BatchNorm1d(4))
    cfg = TrainConfig(optimizer="sgd", lr=256.0, batch_size=1, momentum=0.0,
                      weight_decay=0.0, schedule="constant", epochs=1)
    opt = build_optimizer(model.parameters(), cfg)  # effective lr 1.0
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    assert l1_penalty(model).item() == pytest.approx(linear.weight.abs().sum().item())

    def zero_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (model(x) * 0).sum()  # a loss whose own gradient is zero

    stats = run_steps(model, opt, build_schedule(opt, cfg, 1), torch.device("cpu"),
                      zero_loss, iter([(torch.randn(2, 3), torch.zeros(2))]), l1=0.01)
    after = dict(model.named_parameters())
    # one SGD step at lr 1: w - 0.01 * sign(w) on the linear weight, nothing elsewhere
    expected = before["0.weight"] - 0.01 * before["0.weight"].sign()
    assert torch.allclose(after["0.weight"], expected)
    for name in ("0.bias", "1.weight", "1.bias"):
        assert torch.equal(after[name], before[name])
    assert stats.mean_loss == 0.0  # the penalty is not part of the reported loss


def test_l1_shrinks_a_real_models_weights(digits_data):
    def weights_l1(l1: float) -> float:
        result, _ = _train(digits_data, epochs=1, lr=0.2, l1=l1, weight_decay=0.0)
        assert result.model is not None
        return l1_penalty(result.model).item()

    assert weights_l1(0.05) < 0.8 * weights_l1(0.0)
