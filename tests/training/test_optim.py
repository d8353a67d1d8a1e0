"""Optimizers by name: the config's beta2 reaches Adam's and AdamW's betas."""

import pytest
import torch

from pipelines.training.config import TrainConfig
from pipelines.training.optim import BETA2_OPTIMIZERS, OPTIMIZERS, build_optimizer


def _optimizer(**kw):
    return build_optimizer(torch.nn.Linear(3, 2).parameters(), TrainConfig.from_dict(kw))


@pytest.mark.parametrize("optimizer", BETA2_OPTIMIZERS)
def test_beta2_reaches_adams_betas_beside_momentum_as_beta1(optimizer):
    opt = _optimizer(optimizer=optimizer, momentum=0.8, beta2=0.95)
    assert [group["betas"] for group in opt.param_groups] == [(0.8, 0.95)]
    assert _optimizer(optimizer=optimizer).param_groups[0]["betas"] == (0.9, 0.999)  # default


def test_sgd_has_no_betas_and_is_the_only_optimizer_without_them():
    assert set(OPTIMIZERS) - set(BETA2_OPTIMIZERS) == {"sgd"}
    assert "betas" not in _optimizer(optimizer="sgd").param_groups[0]
