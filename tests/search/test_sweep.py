"""Sweep checks for a user's own problem: data of the task's kind, a function
sweep's metric and config class, budgets, and where staged tuning starts."""

import dataclasses
import re

import pytest

from pipelines.data import ImageFolder, SegDataset
from pipelines.errors import UsageError
from pipelines.search.space import Choice, Domain, IntUniform, LogUniform, Uniform
from pipelines.search.sweep import Budget, Sweep, build_config, start_values

BUDGET = Budget(num_samples=2, max_epochs=2, grace_period=1, reduction_factor=2)


def loop(config, report, resume_state=None):
    report({"loss": 1.0})


@dataclasses.dataclass
class LoopConfig:
    lr: float = 0.1
    hidden: int = 8
    epochs: int = 1

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError("lr must be > 0")


@pytest.mark.parametrize("kwargs, message", [
    (dict(space={"lr": LogUniform(1e-3, 1.0)}, data=SegDataset("membranes")),
     "does not fit a classification sweep, which trains on ImageSource data"),
    (dict(space={"lr": LogUniform(1e-3, 1.0)}, task="segmentation"),
     "a segmentation sweep needs its data: data=SegDataset(...)"),
    (dict(space={"lr": LogUniform(1e-3, 1.0)}, trainable=loop),
     "names the metric it reports"),
    (dict(space={"lr": LogUniform(1e-3, 1.0)}, trainable=loop, metric="loss",
          data=ImageFolder("x")), "loads its own data; drop data="),
    (dict(space={"lr": LogUniform(1e-3, 1.0)}, trainable=loop, metric="loss", mode="low"),
     "use mode='max' or mode='min'"),
    (dict(space={"lr": LogUniform(1e-3, 1.0)}, trainable=loop, metric="loss",
          config_class=dict), "is not a dataclass"),
    (dict(space={"lr": LogUniform(1e-3, 1.0), "width": Choice((4,))}, trainable=loop,
          metric="loss", config_class=LoopConfig), "parameter 'width' is not a trainer config"),
    (dict(space={"lr": Uniform(-1.0, 1.0)}, trainable=loop, metric="loss",
          config_class=LoopConfig), "lr must be > 0"),
    # several objectives and constraints (issue 16)
    (dict(space={"lr": LogUniform(1e-3, 1.0)}, metric=("val_acc", "params"), mode="max"),
     "has 2 objective(s) but mode='max' 1; give one mode per metric"),
    (dict(space={"lr": LogUniform(1e-3, 1.0)}, metric=("val_acc", "params"),
          mode=("max", "min", "min")), "has 2 objective(s) but"),
    (dict(space={"lr": LogUniform(1e-3, 1.0)}, metric=("val_acc", "val_f1"),
          mode=("max", "max")), "objective(s) ['val_f1']: no classification trial reports them"),
    (dict(space={"lr": LogUniform(1e-3, 1.0)}, constraints={"flops": 1e9}),
     "constraints on unknown column(s) ['flops']; constraints limit params, peak_mem_mb"),
    (dict(space={"lr": LogUniform(1e-3, 1.0)}, constraints={"params": -5}),
     "constraints['params'] = -5; a limit is a number > 0"),
    (dict(space={"lr": LogUniform(1e-3, 1.0)}, metric=("val_acc", "val_acc"),
          mode=("max", "max")), "objectives are distinct names"),
    (dict(space={"lr": LogUniform(1e-3, 1.0)}, metric=("params", "val_acc"),
          mode=("min", "max")), "'params' is a cost measured once per trial; put a metric"),
])
def test_a_sweep_of_the_wrong_shape_is_a_one_line_error(kwargs, message):
    sweep = Sweep(description="d", quick=BUDGET, **kwargs)
    with pytest.raises(UsageError, match="^[^\n]*" + re.escape(message)):
        sweep.check()


def test_a_model_key_the_model_does_not_take_is_an_error_not_a_no_op():
    sweep = Sweep(description="d", space={"dropout": Uniform(0.0, 0.5)},
                  fixed={"model": "torchvision:resnet18"}, quick=BUDGET)
    with pytest.raises(UsageError, match="model 'torchvision:resnet18' takes no dropout"):
        sweep.check()
    Sweep(description="d", space={"width": Choice((8, 16))}, fixed={"model": "resnet"},
          quick=BUDGET).check()


def test_a_plain_dict_trainable_takes_any_key_and_a_dataclass_only_its_fields():
    Sweep(description="d", space={"anything": Choice((1, 2))}, trainable=loop, metric="loss",
          quick=BUDGET).check()
    assert build_config(None, {"anything": 1}) == {"anything": 1}
    assert build_config(LoopConfig, {"lr": 0.5}) == LoopConfig(lr=0.5)
    with pytest.raises(ValueError, match="unknown config key.*hiddn.*fields: epochs, hidden"):
        build_config(LoopConfig, {"hiddn": 3})


@dataclasses.dataclass
class NoDefaults:
    lr: float
    hidden: int
    epochs: int


def test_a_config_class_without_defaults_is_checked_with_the_trials_values():
    sweep = Sweep(description="d", space={"lr": LogUniform(1e-3, 1.0),
                                          "hidden": Choice((8, 16))},
                  trainable=loop, metric="loss", config_class=NoDefaults, quick=BUDGET)
    sweep.check()  # lr, hidden: their start values; epochs: the budget's
    assert sweep.horizon(BUDGET, seed=3) == {"epochs": 2}
    missing = dataclasses.replace(sweep, space={"lr": LogUniform(1e-3, 1.0)})
    with pytest.raises(UsageError, match="missing 1 required positional argument: 'hidden'"):
        missing.check()


def test_a_budget_it_lacks_is_named():
    sweep = Sweep(description="d", space={"x": Choice((1,))}, trainable=loop, metric="loss",
                  quick=BUDGET)
    assert sweep.budget(quick=True) is BUDGET
    with pytest.raises(UsageError, match="only a quick budget; run it with --quick"):
        sweep.budget(quick=False)
    with pytest.raises(UsageError, match="defines no budget"):
        Sweep(description="d", space={"x": Choice((1,))}, trainable=loop,
              metric="loss").check()


def test_staged_tuning_starts_from_defaults_or_the_domains_middle():
    space: dict[str, Domain] = {"lr": LogUniform(1e-4, 1.0), "hidden": IntUniform(8, 32),
                                "act": Choice(("relu", "gelu")), "p": Uniform(0.0, 0.5)}
    assert start_values(space, LoopConfig) == {"lr": 0.1, "hidden": 8, "act": "relu", "p": 0.25}
    middle = start_values(space, None)
    assert middle["lr"] == pytest.approx(1e-2) and middle["hidden"] == 20


def test_several_objectives_keep_their_order_and_the_first_is_primary():
    sweep = Sweep("two", space={"lr": LogUniform(1e-3, 1.0)}, quick=Budget(2, 1),
                  metric=("val_acc", "params"), mode=("max", "min"))
    sweep.check()
    assert sweep.objectives == (("val_acc", "max"), ("params", "min"))
    assert (sweep.primary_metric, sweep.primary_mode, sweep.multi_objective) == \
        ("val_acc", "max", True)
    one = Sweep("one", space={"lr": LogUniform(1e-3, 1.0)}, quick=Budget(2, 1))
    assert one.objectives == (("val_acc", "max"),) and not one.multi_objective
