"""LR schedules by name: the step schedule's step_size and gamma, the plateau
schedule's factor and patience, acting on a real torch optimizer."""

import pytest
import torch

from pipelines.training.config import TrainConfig
from pipelines.training.lr_schedules import build_schedule
from pipelines.training.optim import build_optimizer


def _schedule(steps_per_epoch, **kw):
    """An SGD optimizer at effective lr 1.0 and `kw`'s schedule of it."""
    cfg = TrainConfig.from_dict({"lr": 1.0, "batch_size": 256, **kw})
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], cfg)
    return opt, build_schedule(opt, cfg, steps_per_epoch)


def _step_lrs(steps, steps_per_epoch, **kw):
    """The lr of each of `steps` optimizer steps."""
    opt, schedule = _schedule(steps_per_epoch, schedule="step", **kw)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.after_batch()
    return lrs


def test_step_decays_by_gamma_every_step_size_epochs():
    # 3 steps an epoch, a decay of 0.5 every epoch, 4 epochs
    lrs = _step_lrs(12, 3, epochs=4, step_size=1.0, gamma=0.5)
    assert lrs == pytest.approx([0.5 ** (s // 3) for s in range(12)], rel=1e-12)


def test_a_fractional_step_size_decays_within_an_epoch():
    lrs = _step_lrs(8, 4, epochs=2, step_size=0.5, gamma=0.1)  # every 2 steps
    assert lrs == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01, 1e-3, 1e-3], rel=1e-12)


def test_step_size_zero_decays_at_half_and_three_quarters_by_gamma():
    assert _step_lrs(8, 2, epochs=4) == pytest.approx([1] * 4 + [0.1] * 2 + [0.01] * 2)
    assert _step_lrs(8, 2, epochs=4, gamma=0.5) == pytest.approx([1] * 4 + [0.5] * 2
                                                                 + [0.25] * 2)


def _plateau_lrs(losses, **kw):
    """The lr after each epoch whose validation loss is each of `losses`."""
    opt, schedule = _schedule(5, schedule="plateau", **kw)
    lrs = []
    for loss in losses:
        schedule.after_batch()  # stepped per epoch only: no effect
        schedule.after_epoch(loss)
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


def test_plateau_reduces_by_its_factor_after_its_patience():
    flat = [1.0] * 6
    # the first epoch sets the best; then a reduction once patience + 1 epochs did not improve
    assert _plateau_lrs(flat) == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1])  # today's: 0.1, 2
    assert _plateau_lrs(flat, plateau_factor=0.5, plateau_patience=1) == pytest.approx(
        [1, 1, 0.5, 0.5, 0.25, 0.25])
    assert _plateau_lrs(flat, plateau_factor=0.5, plateau_patience=0) == pytest.approx(
        [1, 0.5, 0.25, 0.125, 0.0625, 0.03125])
    improving = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    assert _plateau_lrs(improving, plateau_patience=0) == pytest.approx([1] * 6)
